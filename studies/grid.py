"""Exhaustive reference for small spaces: every grid point of a stepped knob space, measured once (cached).

Used to check how much of the exhaustive front's hypervolume a sampler reaches within its budget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from studies.objectives import directions, objective_values
from studies.pareto import hypervolume, reference_point
from studies.search import make_objective, optimize_to_budget
from studies.space import Point, SearchSpace
from studies.storage import quiet_optuna


def grid_points(space: SearchSpace) -> list[Point]:
    """Every point of a stepped space (one execution mode and batch size)."""
    if space.step is None:
        raise ValueError("an exhaustive grid needs a knob step")
    axes = [np.arange(k.low, k.high + space.step / 2, space.step) for k in space.knobs]
    return [
        Point(
            {k.name: float(v) for k, v in zip(space.knobs, values, strict=True)},
            space.execution_modes[0],
            space.batch_sizes[0],
        )
        for values in itertools.product(*axes)
    ]


def synthetic_tradeoff(point: Point, knobs: tuple[str, str]) -> dict[str, float]:
    """A deterministic accuracy/MAC-fraction surface over two knobs, for checking samplers cheaply.

    Accuracy saturates with the kept fraction ``sigmoid(knob)`` of each knob; the MAC fraction is linear in them.
    """
    a, b = (1 / (1 + math.exp(-point.knobs[k])) for k in knobs)
    accuracy = 1.0 - 0.35 * math.exp(-4.0 * a) - 0.25 * math.exp(-3.0 * b) - 0.05 * a * (1 - b)
    return {"accuracy": accuracy, "mac_fraction": 0.2 + 0.5 * a + 0.3 * b}


@dataclass
class CachedMeasure:
    """``measure_point`` memoised on the knob values (repeat samples cost nothing)."""

    measure_point: Callable[[Point], dict[str, Any]]
    cache: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, point: Point) -> dict[str, Any]:
        key = tuple(sorted((k, round(v, 9)) for k, v in point.knobs.items()))
        if key not in self.cache:
            self.cache[key] = self.measure_point(point)
        return self.cache[key]


@dataclass(frozen=True)
class CoverageResult:
    study_hypervolume: float
    exhaustive_hypervolume: float
    grid_size: int
    trials: int
    distinct_points: int

    @property
    def ratio(self) -> float:
        return self.study_hypervolume / self.exhaustive_hypervolume


def front_coverage(
    space: SearchSpace,
    measure: CachedMeasure,
    *,
    objectives: tuple[str, ...],
    sampler: optuna.samplers.BaseSampler,
    trials: int,
) -> CoverageResult:
    """Hypervolume a study reaches in ``trials`` vs the exhaustive grid's (same reference point)."""
    dirs = directions(objectives)
    grid = np.array([objective_values(measure(p), objectives) for p in grid_points(space)])
    reference = reference_point(grid, dirs)
    with quiet_optuna():
        study = optuna.create_study(directions=dirs, sampler=sampler)
    objective = make_objective(space, measure, objectives=objectives, constraints=())
    optimize_to_budget(study, objective, target=trials, progress=False)
    values = np.array([t.values for t in study.best_trials])
    return CoverageResult(
        study_hypervolume=hypervolume(values, reference, dirs),
        exhaustive_hypervolume=hypervolume(grid, reference, dirs),
        grid_size=len(grid),
        trials=trials,
        distinct_points=len({tuple(sorted(t.params.items())) for t in study.trials}),
    )
