"""Device-aware DANCE on moving-digits with ``tiny``: accuracy against measured batch-1 latency (2 threads) for
static pruning, DANCE with the MAC objective, DANCE with the latency objective and MDP + DANCE.

Runs :func:`dance3d.dance.device_aware.run_device_aware` (settings ``SETTINGS["default"]``, or ``["quick"]``
with ``--quick``) and writes ``benchmarks/results/device_aware/<tag>/``: ``result.json`` and ``tradeoff.png``; the
AVA model's cost table (``cost_table.json``) and the MDP latency table go to the work directory. Usage::

    python benchmarks/device_aware.py [--dense-checkpoint runs/dense/model.pt] [--work-dir runs/bench-device-aware]
        [--seed N] [--tag NAME] [--threads N] [--quick]

Without ``--dense-checkpoint`` (or when it does not exist) it trains a dense ``tiny`` first. The tag is
``--tag`` (``default``), suffixed ``-seedN`` for ``--seed N`` > 0 and ``-quick`` for a smoke run, whose
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from dance3d.benchmark_results import ResultDir, save_result
from dance3d.dance.device_aware import SETTINGS, plot_points, run_device_aware, settings_record, table_rows
from dance3d.dance.device_cost_measure import format_check
from dance3d.errors import Dance3dError
from profiling import collect_env

BENCHMARK = "device_aware"
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-checkpoint", type=Path, help="dense tiny checkpoint (default: train one)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench-device-aware"), help="checkpoints")
    parser.add_argument("--quick", action="store_true", help="smoke run (SETTINGS['quick']); numbers mean nothing")
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage; the tag gets -seedN if not 0")
    parser.add_argument("--tag", default="default", help="names this run's result folder")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--threads", type=int, help="torch threads for training and timing (default: the settings', 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dense_checkpoint is not None and not args.dense_checkpoint.is_file():
        print(f"device_aware: error: no dense checkpoint at {args.dense_checkpoint}", file=sys.stderr)
        return 2
    settings = SETTINGS["quick" if args.quick else "default"]
    if args.threads is not None:
        if args.threads < 1:
            print(f"device_aware: error: --threads {args.threads}: give 1 or more", file=sys.stderr)
            return 2
        runtime = replace(settings.table_runtime, threads=args.threads)
        settings = replace(settings, threads=args.threads, table_runtime=runtime)
    tag = args.tag + (f"-seed{args.seed}" if args.seed else "") + ("-quick" if args.quick else "")
    out = ResultDir(args.results_root, BENCHMARK, tag)
    started = time.perf_counter()
    try:
        outcome = run_device_aware(
            settings, work_dir=args.work_dir / tag, out_dir=out.path, dense_checkpoint=args.dense_checkpoint,
            seed=args.seed,
        )  # fmt: skip
    except Dance3dError as error:
        print(f"device_aware: error: {error}", file=sys.stderr)
        return 2
    outcome["timings_s"]["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": tag,
        "seed": args.seed,
        "quick": args.quick,
        "settings": {
            **settings_record(settings),
            "dense_checkpoint": None if args.dense_checkpoint is None else str(args.dense_checkpoint),
            "batch_size": 1,
        },  # fmt: skip
        "machine": collect_env(),
        **outcome,
    }
    print(table_rows(payload))
    print(format_check(payload["table_check"]))
    print("hypervolume (ms x top-1 under the dense latency):", payload["hypervolume"])
    print("targets:", payload["targets"])
    plot_points(payload, out.file("tradeoff.png"))
    print(f"wrote {save_result(payload, args.results_root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
