"""The quickstart pipeline: embedded defaults, end to end on a CPU in minutes, a report with figures.

Stages so far: data (redundancy distribution) → dense training → test evaluation → report.
A killed quickstart resumes: finished stages are reused, training continues from its checkpoint.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dance3d.config import save_config
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.evaluation import evaluate
from dance3d.reporting import Report, plot_per_class, plot_redundancy, plot_training_curve, redundancy_table
from dance3d.training.checkpoint import load_checkpoint, load_model
from dance3d.training.trainer import RunConfig, TrainConfig, train

QUICK_DATA = DataConfig(num_frames=16, height=32, width=32, num_train=1200, num_val=200, num_test=400)
QUICK_TRAIN = TrainConfig(model="tiny", epochs=5, batch_size=16, lr=3e-3, num_workers=0)


@dataclass(frozen=True)
class QuickstartConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(data=QUICK_DATA, train=QUICK_TRAIN))


def _train_dense(config: RunConfig, out_dir: Path) -> Path:
    checkpoint = out_dir / "model.pt"
    if checkpoint.is_file():
        done = load_checkpoint(checkpoint).get("epochs_done", 0)
        if done >= config.train.epochs:
            return checkpoint
        return train(config, out_dir, resume=True).checkpoint_path
    return train(config, out_dir).checkpoint_path


def run_quickstart(config: QuickstartConfig, out_dir: str | Path) -> Path:
    """Run every stage into ``out_dir``; returns the path of ``report.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    started = time.perf_counter()
    report = Report("dance3d quickstart")
    data = config.run.data

    test_set = build_dataset(data, "test")
    metas = [test_set[i]["meta"] for i in range(len(test_set))]
    report.add(
        "Data: moving-digits",
        f"{data.num_train}/{data.num_val}/{data.num_test} train/val/test clips of "
        f"{data.num_frames}x{data.height}x{data.width}; label = direction of motion. "
        "Per-clip redundancy of the test split:",
        table=redundancy_table(metas),
        figures=[plot_redundancy(metas, out_dir / "redundancy.png")],
    )

    checkpoint = _train_dense(config.run, out_dir / "dense")
    history = load_checkpoint(checkpoint)["history"]
    report.add(
        f"Dense training ({config.run.train.model})",
        f"{len(history)} epochs, {sum(r['epoch_s'] for r in history):.0f} s of training.",
        figures=[plot_training_curve(history, out_dir / "training_curve.png")],
    )

    loaded = load_model(checkpoint)
    result = evaluate(loaded.model, test_set, classes=loaded.classes, progress=True)
    (out_dir / "dense_eval.json").write_text(json.dumps(result.to_dict(), indent=2))
    report.add(
        "Dense evaluation (test split)",
        f"top-1 **{result.top1:.4f}**, top-5 {result.top5:.4f} on {result.num_clips} clips.",
        figures=[plot_per_class(result.per_class_accuracy, out_dir / "per_class.png")],
    )

    report.add(
        "Run",
        f"{time.perf_counter() - started:.0f} s in total on {platform.machine()} "
        f"({platform.processor() or 'cpu'}), {torch.get_num_threads()} torch threads, torch {torch.__version__}.",
    )
    return report.write(out_dir / "report.md")
