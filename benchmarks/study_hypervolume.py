"""How much of the exhaustive front's hypervolume each sampler reaches within a trial budget.

Space: two knobs of a dynamic model on a 9x9 grid (-4..4, step 1). Measurements: by default the
deterministic synthetic trade-off of ``studies.grid.synthetic_tradeoff`` on an untrained ``tiny-test``
(cheap); with ``--checkpoint`` the real accuracy and mean MAC fraction of that trained dynamic model
(e.g. the quickstart's ``runs/quick/aap/model.pt``) on its first ``--clips`` validation clips, each grid
point measured once and shared by every sampler and seed. Writes
``benchmarks/results/study_hypervolume/<tag>/result.json``: tag ``default`` (``checkpoint`` with a
checkpoint; ``--tag`` to name it; a ``--quick`` run appends ``-quick``).

    python benchmarks/study_hypervolume.py [--trials 30] [--seeds 5] [--checkpoint runs/quick/aap/model.pt] [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dance3d.benchmark_results import save_result
from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.models import create_model
from profiling import collect_env
from studies import StudyConfig
from studies.grid import CachedMeasure, front_coverage, synthetic_tradeoff
from studies.samplers import make_sampler
from studies.space import build_space

BENCHMARK = "study_hypervolume"
KNOBS = ("stage0.frames_offset", "stage1.channels_offset")
SAMPLERS = ("tpe", "nsga2", "random")
RESULTS = Path(__file__).resolve().parent / "results"


def checkpoint_measure(path: str, clips: int):
    """The trained dynamic model of ``path`` and a function measuring a knob point on its validation clips."""
    from dance3d.data.registry import build_dataset
    from dance3d.dynamic import apply_knobs
    from dance3d.loading import load_model

    loaded = load_model(path)
    model = loaded.model.eval()
    val = build_dataset(loaded.data, "val", classes=loaded.classes)
    items = [val[i] for i in range(min(clips, len(val)))]
    batch = torch.stack([item["clip"] for item in items])
    labels = torch.tensor([item["label"] for item in items])

    def measure(point) -> dict[str, float]:
        apply_knobs(model, point.knobs)
        logits, fractions = [], []
        with torch.no_grad():
            for chunk in batch.split(50):
                logits.append(model(chunk))
                fractions.append(model.last_mac_fraction)
        accuracy = float((torch.cat(logits).argmax(1) == labels).float().mean())
        return {"accuracy": accuracy, "mac_fraction": float(torch.cat(fractions).mean())}

    return model, measure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--checkpoint", help="a trained dynamic checkpoint (default: synthetic measurements)")
    parser.add_argument("--clips", type=int, default=200, help="validation clips per point (with --checkpoint)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 12 trials (tag gets -quick)")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", help="the run's name (default: default, or checkpoint with --checkpoint)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.trials = 1, 12
    started = time.perf_counter()
    if args.checkpoint:
        model, measure_point = checkpoint_measure(args.checkpoint, args.clips)
    else:
        model = convert_model(
            create_model("tiny-test", num_classes=8), clip_shape=(8, 32, 32), config=DynamicConfig(channel_multiple=4)
        )

        def measure_point(point):
            return synthetic_tradeoff(point, KNOBS)

    shared = CachedMeasure(measure_point)  # every grid point measured at most once, across samplers and seeds
    rows = []
    for sampler in SAMPLERS:
        for seed in range(args.seeds):
            config = StudyConfig(
                knobs=KNOBS, knob_low=-4.0, knob_high=4.0, knob_step=1.0, sampler=sampler, seed=seed, population_size=10
            )
            space = build_space(model, config)
            result = front_coverage(
                space,
                shared,
                objectives=("accuracy", "mac_fraction"),
                sampler=make_sampler(config),
                trials=args.trials,
            )
            rows.append({"sampler": sampler, "seed": seed, **asdict(result), "ratio": result.ratio})
    print(f"{'sampler':<8} {'mean ratio':>10} {'min ratio':>10} {'distinct points':>16}  (grid {rows[0]['grid_size']})")
    summary = {}
    for sampler in SAMPLERS:
        ratios = np.array([r["ratio"] for r in rows if r["sampler"] == sampler])
        distinct = np.mean([r["distinct_points"] for r in rows if r["sampler"] == sampler])
        summary[sampler] = {"mean_ratio": float(ratios.mean()), "min_ratio": float(ratios.min())}
        print(f"{sampler:<8} {ratios.mean():>10.4f} {ratios.min():>10.4f} {distinct:>16.1f}")
    source = {"checkpoint": args.checkpoint, "clips": args.clips} if args.checkpoint else "synthetic_tradeoff"
    settings = {"trials": args.trials, "seeds": args.seeds, "knobs": KNOBS, "measurements": source}
    tag = args.tag or ("checkpoint" if args.checkpoint else "default")
    payload = {
        "benchmark": BENCHMARK,
        "tag": tag + ("-quick" if args.quick else ""),  # a smoke run never replaces a real result
        "seed": None,  # one run per seed in 0..seeds-1, all in "runs"
        "quick": args.quick,
        "settings": settings,
        "machine": collect_env(),
        "timings_s": {"total": time.perf_counter() - started},
        "targets": {},
        "summary": summary,
        "runs": rows,
    }
    print(f"wrote {save_result(payload, args.results_root)}")


if __name__ == "__main__":
    main()
