"""DANCE on moving-digits: dense -> AVA -> AAP, ablations, static baselines at matched MACs, paired tests.

Runs :func:`dance3d.dance.experiment.run_experiment` (settings: ``EXPERIMENTS["default"]``, or
``["smoke"]`` with ``--quick``) and writes ``benchmarks/results/dance_moving_digits/<tag>/``:
``result.json``, ``clips.parquet`` (every model's per-clip test results) and the figures
``ava_variability.png``, ``adaptivity.png``, ``tradeoff.png``. The tag is ``--tag`` (``default``
when none), prefixed ``quick-`` for ``--quick`` and by the task for a checkpoint trained on
another moving-digits task (``digit-direction-...``), suffixed ``-seedN`` for ``--seed N`` > 0.
Usage::

    python benchmarks/dance_moving_digits.py [--dense-checkpoint PATH] [--quick] [--seed N] [--tag NAME]
        [--train-clips N] [--test-clips N] [--retarget] [--static-distill] [--extra-static-frame-keep F]
        [--set aap.mac_penalty=8 --set comparison.static_lr=1e-3 ...]

Without a dense checkpoint at ``PATH`` (default ``runs/dense/model.pt``) it trains one first
(``dance3d train``'s defaults). The rules (``dance3d.dance.compare``): a DANCE run beats the
static baselines when it is more accurate than every rounded-width static baseline (every frame
kept, or ``static_frame_keep`` of them) that spends at least its MACs less 2 points. ``--quick``
is a smoke run; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dance3d.benchmark_results import ResultDir, save_result
from dance3d.config import load_config, to_dict
from dance3d.dance.experiment import EXPERIMENTS, Experiment, ExperimentConfig, run_experiment, tradeoff_series
from dance3d.dance.plots import plot_adaptivity, plot_tradeoff, plot_variability
from dance3d.errors import ConfigError
from dance3d.loading import load_model
from profiling import collect_env, retain_freed_memory

BENCHMARK = "dance_moving_digits"
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DENSE = Path("runs/dense/model.pt")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-checkpoint", type=Path, default=DEFAULT_DENSE)
    parser.add_argument("--quick", action="store_true", help="smoke run (EXPERIMENTS['smoke']); numbers mean nothing")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage; the tag gets -seedN if not 0")
    parser.add_argument("--tag", default="", help="names this setting's result folder (letters, digits, '-')")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="root of the results folders")
    parser.add_argument("--train-clips", type=int, help="comparison.train_clips: for AVA, AAP and static fine-tunes")
    parser.add_argument("--test-clips", type=int, help="comparison.test_clips: more clips, tighter paired tests")
    parser.add_argument(
        "--extra-static-frame-keep",
        type=float,
        action="append",
        default=[],
        metavar="F",
        help="also a static baseline at this fraction of the frames (repeatable), e.g. 0.25",
    )
    parser.add_argument(
        "--static-distill", action="store_true", help="fine-tune static baselines with AAP's distillation too"
    )
    parser.add_argument(
        "--retarget", action="store_true", help="also re-target the trained DANCE model (no training) to each MACs"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="ava.X, aap.X, dynamic.X or comparison.X, e.g. aap.mac_penalty=8 (the library's override syntax)",
    )
    args = parser.parse_args(argv)
    if args.tag and not re.fullmatch(r"[A-Za-z0-9-]+", args.tag):
        parser.error(f"--tag {args.tag!r}: use letters, digits and '-' only (it names a folder)")
    return args


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    """The preset, then the shortcut flags, then ``--set``; every stage seeded with ``--seed``, no progress bars."""
    flags = {"train_clips": args.train_clips, "test_clips": args.test_clips, "retarget": args.retarget or None,
             "static_distill": args.static_distill or None,
             "extra_static_frame_keeps": args.extra_static_frame_keep or None}  # fmt: skip
    overrides = [f"comparison.{k}={v}" for k, v in flags.items() if v is not None] + args.set
    base = to_dict(EXPERIMENTS["smoke" if args.quick else "default"])
    config = load_config(ExperimentConfig, base=base, overrides=overrides)
    ava = replace(config.ava, seed=args.seed, progress=False)
    return replace(config, ava=ava, aap=replace(config.aap, seed=args.seed, progress=False))


def result_tag(args: argparse.Namespace, task: str) -> str:
    parts = ["quick"] * args.quick + [task] * (task != "direction") + [args.tag] * bool(args.tag)
    return "-".join(parts or ["default"]) + (f"-seed{args.seed}" if args.seed else "")


def dense_checkpoint(path: Path) -> Path:
    if not path.is_file():
        from dance3d.training.trainer import RunConfig, train

        train(RunConfig(), path.parent)  # the default: tiny on moving-digits 16x64x64
    return path


def print_table(experiment: Experiment) -> None:
    rows = [{"model": "dense", "top1": experiment.dense["top1"], "mean_mac_fraction": 1.0,
             "latency_ms": experiment.dense["latency_ms_batch1"]}]  # fmt: skip
    rows += [{"model": name, "top1": run["top1"], "mean_mac_fraction": run["mean_mac_fraction"],
              "latency_ms": run.get("compact_latency_ms_batch1", np.nan)}
             for name, run in experiment.runs.items()]  # fmt: skip
    table = pd.DataFrame(rows).set_index("model")
    table["latency_vs_dense"] = table["latency_ms"] / experiment.dense["latency_ms_batch1"]
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))
    for name, gap in experiment.paired.items():
        print(f"{name}: {gap['top1_diff_points']:+.2f} points, {gap['only_a_correct']} vs "
              f"{gap['only_b_correct']} clips only one gets right, McNemar p = {gap['mcnemar_p']:.3f}")  # fmt: skip
    print("targets: " + ", ".join(f"{k} {v}" for k, v in experiment.targets.items()))


def write_figures(experiment: Experiment, folder: ResultDir) -> list[str]:
    dance = experiment.records["dance"]
    plot_variability(*experiment.variability, folder.file("ava_variability.png"))
    plot_adaptivity(
        np.array([r["redundancy"] for r in dance]),
        np.array([r["mac_fraction"] for r in dance]),
        folder.file("adaptivity.png"),
        rho=experiment.runs["dance"]["spearman_mac_fraction_vs_redundancy"],
    )
    series = tradeoff_series(experiment.runs, experiment.kinds)
    plot_tradeoff(series, folder.file("tradeoff.png"), dense_top1=experiment.dense["top1"])
    return ["ava_variability.png", "adaptivity.png", "tradeoff.png"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = experiment_config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    retain_freed_memory()  # steadier latencies: no page faults on every forward (docs/profiling.md)
    torch.manual_seed(args.seed)
    loaded = load_model(dense_checkpoint(args.dense_checkpoint))
    folder = ResultDir(args.results_dir, BENCHMARK, result_tag(args, loaded.data.task))
    partial = folder.file("partial.json")  # progress of an unfinished run
    experiment = run_experiment(loaded.model, loaded.data, loaded.classes, config, progress_path=partial)
    print_table(experiment)
    figures = write_figures(experiment, folder)
    clips = [{"model": name, **record} for name, rows in experiment.records.items() for record in rows]
    pd.DataFrame(clips).to_parquet(folder.file("clips.parquet"), index=False)
    dance = experiment.runs["dance"]
    out = save_result(
        {
            "benchmark": BENCHMARK,
            "tag": folder.tag,
            "seed": args.seed,
            "quick": args.quick,
            "settings": {
                "model": loaded.checkpoint["model"],
                "dense_checkpoint": str(args.dense_checkpoint),
                "data": asdict(experiment.data),
                "clip_shape": [loaded.data.num_frames, loaded.data.height, loaded.data.width],
                "num_clips": experiment.clip_counts,
                **to_dict(config),
                "argv": sys.argv[1:] if argv is None else list(argv),
                "clip_storage": "float16 in memory (all methods see the same clips)",
            },
            "machine": {**collect_env(), "note": "2 CPU cores shared with other jobs; timings are indicative"},
            "dense": experiment.dense,
            "ava": experiment.ava,
            "runs": experiment.runs,
            "summary": {"top1_drop_points": 100 * (experiment.dense["top1"] - dance["top1"])},
            "targets": experiment.targets,
            "paired_comparisons": experiment.paired,
            "timings_s": experiment.timings_s,
            "figures": figures,
            "per_clip_table": "clips.parquet",
        },
        args.results_dir,
    )
    partial.unlink(missing_ok=True)
    print(f"wrote {out} in {experiment.timings_s['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
