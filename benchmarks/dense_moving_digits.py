"""Dense baseline on moving-digits: train the default model, evaluate on test, record the data's redundancy.

    python benchmarks/dense_moving_digits.py [--out runs/bench-dense] [--quick]

Writes ``benchmarks/results/dense_moving_digits/<tag>/result.json`` (tag ``default`` unless ``--tag``; a
``--quick`` run appends ``-quick``): test top-1, training wall time, machine, and the distribution of
each per-clip redundancy field over the test split.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

from dance3d.benchmark_results import save_result
from dance3d.config import to_dict
from dance3d.data.registry import build_dataset
from dance3d.evaluation import evaluate
from dance3d.loading import load_model
from dance3d.reporting import redundancy_table
from dance3d.training.trainer import RunConfig, train
from profiling import collect_env

BENCHMARK = "dense_moving_digits"
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-dense")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch on small splits of short clips")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", default="default", help="the run's name (default: %(default)s)")
    args = parser.parse_args(argv)
    config = RunConfig()
    if args.quick:
        data = replace(config.data, num_frames=8, height=32, width=32, num_train=64, num_val=16, num_test=32)
        config = replace(config, data=data, train=replace(config.train, epochs=1, num_workers=0, progress=False))
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    result = train(config, args.out)
    train_s = time.perf_counter() - started
    loaded = load_model(result.checkpoint_path)
    test_set = build_dataset(config.data, "test")
    evaluation = evaluate(loaded.model, test_set, classes=loaded.classes, progress=not args.quick)
    table = redundancy_table([r for r in evaluation.records])
    payload = {
        "benchmark": BENCHMARK,
        "tag": args.tag + ("-quick" if args.quick else ""),  # a smoke run never replaces a real result
        "seed": config.train.seed,
        "quick": args.quick,
        "settings": {"config": to_dict(config), "out": args.out},
        "machine": collect_env(),
        "timings_s": {"train": train_s, "evaluate": time.perf_counter() - started - train_s},
        "targets": {},
        "model": config.train.model,
        "test_top1": evaluation.top1,
        "test_clips": evaluation.num_clips,
        "train_wall_s": train_s,
        "epochs": config.train.epochs,
        "history": result.history,
        "redundancy_distribution": table.to_dict(orient="index"),
    }
    print(f"test top-1 {evaluation.top1:.4f} after {train_s / 60:.1f} min of training")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {save_result(payload, args.results_root)}")


if __name__ == "__main__":
    main()
