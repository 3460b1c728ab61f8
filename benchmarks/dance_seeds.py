"""DANCE across seeds: the same dense model, AVA + AAP run with N seeds, each against dense on the same test clips.

Seeds stand in for the small numeric differences between CPUs that DANCE's training amplifies: a
setting is stable when every seed stays within 1 point of dense at its MAC target. ``--preset
quickstart`` runs the quickstart's DANCE stage (its dense model is trained first with the
quickstart's data and training settings when ``--dense-checkpoint`` does not exist); ``--preset
default`` runs the DANCE benchmark's setting on a dense checkpoint you pass. Writes
``benchmarks/results/dance_seeds/<preset>[-<tag>]/result.json`` and ``seeds.png``. With
``--dense-per-seed`` (quickstart preset) every seed also trains its own dense model with that seed, so
the whole pipeline varies as it does between machines, and each DANCE model is paired with its own
dense model (tag ``<preset>-dense-per-seed``). Usage::

    python benchmarks/dance_seeds.py --preset quickstart --seeds 0 1 2 3 4 [--threads 1] [--dense-per-seed]
        [--set aap.X=V ...]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from dance3d.benchmark_results import ResultDir, save_result
from dance3d.config import load_config, to_dict
from dance3d.dance.pipeline import PRESETS, DanceRunConfig, DanceSettings, run_dance
from dance3d.data.registry import build_dataset
from dance3d.errors import ConfigError
from dance3d.evaluation import evaluate
from dance3d.figures import subplots
from dance3d.loading import load_model
from dance3d.quickstart import QUICK_DATA, QUICK_TRAIN
from dance3d.quickstart_seeds import MAX_DROP_POINTS, drop_axes
from dance3d.reporting import paired_accuracy
from dance3d.training.trainer import RunConfig, train
from profiling import collect_env

BENCHMARK = "dance_seeds"
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quickstart", "default"), default="quickstart")
    parser.add_argument("--dense-checkpoint", type=Path, default=Path("runs/dense-quickstart/model.pt"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/dance-seeds"), help="checkpoints per seed")
    parser.add_argument("--tag", default="", help="names this setting's result folder (letters, digits, '-')")
    parser.add_argument("--results-root", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="smoke run: one epoch per stage, few clips")
    parser.add_argument("--dense-per-seed", action="store_true",
                        help="quickstart preset: a dense model per seed, trained with it")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="ava.X, aap.X or dynamic.X on top of the preset")  # fmt: skip
    args = parser.parse_args(argv)
    if args.tag and not re.fullmatch(r"[A-Za-z0-9-]+", args.tag):
        parser.error(f"--tag {args.tag!r}: use letters, digits and '-' only (it names a folder)")
    if args.dense_per_seed and args.preset != "quickstart":
        parser.error("--dense-per-seed trains the quickstart's dense model: use it with --preset quickstart")
    return args


def settings_for(args: argparse.Namespace) -> DanceSettings:
    base = PRESETS["smoke" if args.quick else args.preset]
    return load_config(DanceSettings, base=to_dict(base), overrides=args.set)


def dense_checkpoint(args: argparse.Namespace, *, path: Path | None = None, seed: int = 0) -> Path:
    """``path`` (default ``--dense-checkpoint``), trained with the quickstart's settings and ``seed`` if missing."""
    path = args.dense_checkpoint if path is None else path
    if path.is_file():
        return path
    if args.preset != "quickstart":
        raise ConfigError(f"no dense checkpoint at {path}")
    data, train_config = QUICK_DATA, replace(QUICK_TRAIN, seed=seed)
    if args.quick:
        data = replace(data, num_train=64, num_val=32, num_test=64)
        train_config = replace(train_config, model="tiny-test", epochs=1)
    return train(RunConfig(data=data, train=train_config), path.parent).checkpoint_path


def evaluated_dense(path: Path):
    """The dense model at ``path``, its test split and its test evaluation."""
    dense = load_model(path)
    test = build_dataset(dense.data, "test", classes=dense.classes)
    return dense, evaluate(dense.model, test, classes=dense.classes, progress=False)


def plot_seeds(rows: list[dict], path: Path) -> None:
    """Each seed's drop from its dense model against its mean MAC fraction, the 1-point band shaded."""
    fig, ax = subplots(figsize=(5.0, 3.4))
    drop_axes(ax)
    ax.scatter(
        [r["mean_mac_fraction"] for r in rows], [r["drop_points"] for r in rows], color="tab:blue", label="DANCE"
    )
    for r in rows:
        ax.annotate(f"seed {r['seed']}", (r["mean_mac_fraction"], r["drop_points"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tag = "-".join(
        ["quick"] * args.quick + [args.preset] + ["dense-per-seed"] * args.dense_per_seed + [args.tag] * bool(args.tag)
    )
    try:
        settings = settings_for(args)
        dense_path = None if args.dense_per_seed else dense_checkpoint(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if dense_path is not None:
        dense, dense_result = evaluated_dense(dense_path)
    rows, timings = [], {}
    for seed in args.seeds:
        t = time.perf_counter()
        if args.dense_per_seed:
            dense_path = dense_checkpoint(args, path=args.work_dir / tag / f"dense-seed{seed}" / "model.pt", seed=seed)
            dense, dense_result = evaluated_dense(dense_path)
        config = DanceRunConfig(
            data=dense.data,
            ava=replace(settings.ava, seed=seed, progress=False),
            aap=replace(settings.aap, seed=seed, progress=False),
            dynamic=settings.dynamic,
        )
        run = run_dance(config, dense_path, args.work_dir / tag / f"seed{seed}")
        records = run.test["records"]
        paired = paired_accuracy(records, dense_result.records)
        fraction = statistics.fmean(r["mac_fraction"] for r in records)
        rows.append({"seed": seed, "dense_top1": dense_result.top1, "top1": run.test["top1"],
                     "mean_mac_fraction": fraction,
                     "drop_points": 100 * (dense_result.top1 - run.test["top1"]),
                     "only_dance_correct": paired["only_a_correct"], "only_dense_correct": paired["only_b_correct"],
                     "mcnemar_p": paired["mcnemar_p"]})  # fmt: skip
        timings[f"seed{seed}_s"] = time.perf_counter() - t
        print(
            f"seed {seed}: top-1 {rows[-1]['top1']:.4f} at {fraction:.3f} (dense {dense_result.top1:.4f})", flush=True
        )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    folder = ResultDir(args.results_root, BENCHMARK, tag)
    plot_seeds(rows, folder.file("seeds.png"))
    timings["total_s"] = time.perf_counter() - started
    spread = {
        key: {"mean": float(table[key].mean()), "std": float(table[key].std(ddof=1)) if len(table) > 1 else 0.0,
              "min": float(table[key].min()), "max": float(table[key].max())}
        for key in ("dense_top1", "top1", "mean_mac_fraction", "drop_points")
    }  # fmt: skip
    target = settings.aap.target_mac_fraction
    out = save_result(
        {
            "benchmark": BENCHMARK,
            "tag": folder.tag,
            "seed": None,
            "quick": args.quick,
            "settings": {
                "preset": args.preset,
                "seeds": args.seeds,
                "dense_checkpoint": "one per seed" if args.dense_per_seed else str(dense_path),
                "data": asdict(dense.data),
                **to_dict(settings),
                "argv": sys.argv[1:] if argv is None else list(argv),
            },  # fmt: skip
            "machine": {**collect_env(), "note": "2 CPU cores shared with other jobs"},
            "dense": {"top1": None if args.dense_per_seed else dense_result.top1},
            "seeds": rows,
            "spread": spread,
            "targets": {
                "every_seed_within_1_point_of_dense": bool((table["drop_points"] <= MAX_DROP_POINTS).all()),
                "every_seed_within_0.05_of_the_mac_target": target is not None
                and bool(((table["mean_mac_fraction"] - target).abs() <= 0.05).all()),
            },
            "timings_s": timings,
            "figures": ["seeds.png"],
        },
        args.results_root,
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
