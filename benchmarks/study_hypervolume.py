"""How much of the exhaustive front's hypervolume each sampler reaches within a trial budget.

Space: two knobs of a ``tiny-test`` dynamic model on a 9x9 grid (-4..4, step 1); measurements: the
deterministic synthetic trade-off of ``studies.grid.synthetic_tradeoff`` (so the exhaustive front is cheap).
Writes ``benchmarks/results/study_hypervolume.json`` and prints a table.

    python benchmarks/study_hypervolume.py [--trials 30] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.models import create_model
from studies import StudyConfig
from studies.grid import CachedMeasure, front_coverage, synthetic_tradeoff
from studies.samplers import make_sampler
from studies.space import build_space

KNOBS = ("stage0.frames_offset", "stage1.channels_offset")
OUT = Path(__file__).parent / "results" / "study_hypervolume.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    model = convert_model(
        create_model("tiny-test", num_classes=8), clip_shape=(8, 32, 32), config=DynamicConfig(channel_multiple=4)
    )
    rows = []
    for sampler in ("tpe", "nsga2", "random"):
        for seed in range(args.seeds):
            config = StudyConfig(
                knobs=KNOBS, knob_low=-4.0, knob_high=4.0, knob_step=1.0, sampler=sampler, seed=seed, population_size=10
            )
            space = build_space(model, config)
            measure = CachedMeasure(lambda p: synthetic_tradeoff(p, KNOBS))
            result = front_coverage(
                space,
                measure,
                objectives=("accuracy", "mac_fraction"),
                sampler=make_sampler(config),
                trials=args.trials,
            )
            rows.append({"sampler": sampler, "seed": seed, **asdict(result), "ratio": result.ratio})
    print(f"{'sampler':<8} {'mean ratio':>10} {'min ratio':>10} {'distinct points':>16}  (grid {rows[0]['grid_size']})")
    summary = {}
    for sampler in ("tpe", "nsga2", "random"):
        ratios = np.array([r["ratio"] for r in rows if r["sampler"] == sampler])
        distinct = np.mean([r["distinct_points"] for r in rows if r["sampler"] == sampler])
        summary[sampler] = {"mean_ratio": float(ratios.mean()), "min_ratio": float(ratios.min())}
        print(f"{sampler:<8} {ratios.mean():>10.4f} {ratios.min():>10.4f} {distinct:>16.1f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    payload = {"trials": args.trials, "seeds": args.seeds, "knobs": KNOBS, "summary": summary, "runs": rows}
    OUT.write_text(json.dumps({**payload, "machine": machine}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
