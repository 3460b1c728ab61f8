"""On a 2-knob 9x9 grid, the seeded default (TPE) study reaches >= 95% of the exhaustive front's hypervolume.

The measurements are a deterministic synthetic trade-off (accuracy saturating with the kept fraction of two
knobs, MACs linear in them), so the exhaustive front is cheap to compute and has many points; the search
machinery (space from the model, sampler, objective, hypervolume) is the real one.
"""

from __future__ import annotations

from study_helpers import dynamic_model, fast_config

from studies.grid import CachedMeasure, front_coverage, grid_points, synthetic_tradeoff
from studies.pareto import pareto_mask
from studies.samplers import make_sampler
from studies.space import Point, build_space

KNOBS = ("stage0.frames_offset", "stage1.channels_offset")
OBJECTIVES = ("accuracy", "mac_fraction")


def synthetic(point: Point) -> dict[str, float]:
    return synthetic_tradeoff(point, KNOBS)


def test_default_tpe_study_reaches_95_percent_of_the_exhaustive_front():
    config = fast_config(knobs=KNOBS, knob_low=-4.0, knob_high=4.0, knob_step=1.0, seed=0)
    space = build_space(dynamic_model(), config)
    measure = CachedMeasure(synthetic)
    grid = [synthetic(p) for p in grid_points(space)]
    front = pareto_mask([[m[o] for o in OBJECTIVES] for m in grid], ["maximize", "minimize"])
    assert len(grid) == 81 and front.sum() >= 8  # a real front, not one corner point
    result = front_coverage(space, measure, objectives=OBJECTIVES, sampler=make_sampler(config), trials=30)
    assert result.ratio >= 0.95, result
    assert result.distinct_points <= 30  # within budget: a third of the grid at most
