"""Dense baseline on moving-digits: train the default model, evaluate on test, record the data's redundancy.

    python benchmarks/dense_moving_digits.py [--out runs/bench-dense] [--quick]

Writes ``benchmarks/results/dense_moving_digits.json``: test top-1, training wall time, machine, and
the distribution of each per-clip redundancy field over the test split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from dance3d.config import to_dict
from dance3d.data.registry import build_dataset
from dance3d.evaluation import evaluate
from dance3d.loading import load_model
from dance3d.reporting import redundancy_table
from dance3d.training.trainer import RunConfig, train
from profiling import collect_env

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-dense")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch on a small split")
    args = parser.parse_args()
    config = RunConfig()
    if args.quick:
        config = replace(config, data=replace(config.data, num_train=160, num_val=32, num_test=64),
                         train=replace(config.train, epochs=1))  # fmt: skip
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    result = train(config, args.out)
    train_s = time.perf_counter() - started
    loaded = load_model(result.checkpoint_path)
    test_set = build_dataset(config.data, "test")
    evaluation = evaluate(loaded.model, test_set, classes=loaded.classes)
    table = redundancy_table([r for r in evaluation.records])
    payload = {
        "benchmark": "dense_moving_digits",
        "quick": args.quick,
        "model": config.train.model,
        "test_top1": evaluation.top1,
        "test_clips": evaluation.num_clips,
        "train_wall_s": train_s,
        "epochs": config.train.epochs,
        "history": result.history,
        "redundancy_distribution": table.to_dict(orient="index"),
        "config": to_dict(config),
        "machine": collect_env(),
    }
    print(f"test top-1 {evaluation.top1:.4f} after {train_s / 60:.1f} min of training")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    RESULTS.mkdir(exist_ok=True)
    name = "dense_moving_digits_quick.json" if args.quick else "dense_moving_digits.json"
    (RESULTS / name).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
