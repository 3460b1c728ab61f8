"""DANCE on untrimmed clips: does a per-clip controller spend compute where each clip's event needs it?

Runs :func:`dance3d.dance.experiment.run_experiment` with ``EXPERIMENTS["untrimmed"]`` on a dense
``tiny`` model trained on untrimmed moving-digits clips (design, data and targets fixed in
``docs/experiments/2026-12-06-dance-untrimmed-design.md``). The static baselines, each fine-tuned as
long as DANCE's AAP stage and distilled from the dense model like it, at DANCE's MACs: magnitude
channel pruning, every 2nd / every 4th input frame, every 2nd frame plus channels, and an
MDP-pruned model (channels and blocks from MDP's exact solver at a counted-MAC budget). Writes
``benchmarks/results/dance_untrimmed/<tag>/``: ``result.json``, ``clips.parquet`` (every model's
per-clip test results), ``frames.parquet`` (DANCE's keep rate of every input frame, and inside /
outside each clip's event), ``kept_frames.png`` and ``tradeoff.png``.

``--baselines-only`` runs the dense model and the static baselines at the design's MAC target
(0.35) without DANCE: the record an experiment commits before its first DANCE run. ``--stack-mdp F``
runs static + dynamic stacked instead: MDP prunes the dense model to F of its MACs (fine-tuned like
the MDP baseline), then AVA and AAP on that model toward 0.35 of the dense MACs overall, compared on
the same test clips with the designed run of the same seed (tag ``stack<F>``). Usage::

    dance3d train --model tiny --data moving-digits --set data.untrimmed=true --set data.num_frames=32 \\
        --set data.height=32 --set data.width=32 --set data.num_test=2400 --epochs 24 --out runs/dense-untrimmed
    python benchmarks/dance_untrimmed.py --dense-checkpoint runs/dense-untrimmed/model.pt --seed 0 [--threads 2]

``--quick`` is a smoke run on a few clips (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from dance3d.benchmark_results import ResultDir, save_result
from dance3d.config import to_dict
from dance3d.dance.common import batches
from dance3d.dance.compare import FixedCostModel, StaticRun, run_summary
from dance3d.dance.experiment import (
    EXPERIMENTS,
    ExperimentConfig,
    comparison_splits,
    dense_mac_count,
    run_baselines,
    run_experiment,
    tradeoff_series,
)
from dance3d.dance.latency import dense_forward
from dance3d.dance.plots import plot_tradeoff
from dance3d.dance.static_baseline import finetune
from dance3d.dance.untrimmed import TARGET_RULES, event_frame_keep, keep_summary, plot_kept_frames, untrimmed_targets
from dance3d.evaluation import evaluate
from dance3d.loading import load_model
from dance3d.mdp.lut_measure import TableGrid
from dance3d.mdp.mac_table import prune_to_macs
from profiling import collect_env, retain_freed_memory

BENCHMARK = "dance_untrimmed"
RESULTS = Path(__file__).resolve().parent / "results"
DESIGN_TARGET = 0.35  # the MAC fraction the baselines-only record is taken at (DANCE's target)
IMPORTANCE_BATCHES = 8  # MDP's Taylor importance: batches of AAP's batch size from the train clips


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-checkpoint", type=Path, default=Path("runs/dense-untrimmed/model.pt"))
    parser.add_argument("--quick", action="store_true", help="smoke run on a few clips; numbers mean nothing")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage; the tag gets -seedN")
    parser.add_argument("--tag", default="", help="names this setting's result folder (letters, digits, '-')")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="root of the results folders")
    parser.add_argument("--baselines-only", action="store_true", help="dense and static baselines at 0.35, no DANCE")
    parser.add_argument("--stack-mdp", type=float, metavar="F", help="DANCE on an MDP-pruned model at F of the MACs")
    args = parser.parse_args(argv)
    if args.tag and not re.fullmatch(r"[A-Za-z0-9-]+", args.tag):
        parser.error(f"--tag {args.tag!r}: use letters, digits and '-' only (it names a folder)")
    return args


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    config = EXPERIMENTS["untrimmed"]
    if args.quick:
        smoke = EXPERIMENTS["smoke"]
        comparison = replace(config.comparison, train_clips=32, val_clips=16, test_clips=48, latency_clips=8)
        config = replace(config, ava=smoke.ava, aap=replace(smoke.aap, target_mac_fraction=0.35), comparison=comparison)
    ava = replace(config.ava, seed=args.seed, progress=False)
    return replace(config, ava=ava, aap=replace(config.aap, seed=args.seed, progress=False))


def result_tag(args: argparse.Namespace) -> str:
    stack = [f"stack{args.stack_mdp:g}"] if args.stack_mdp else []
    parts = ["quick"] * args.quick + ["baselines"] * args.baselines_only + stack + [args.tag] * bool(args.tag)
    return "-".join(parts or ["default"]) + f"-seed{args.seed}"


def mdp_baseline(dense: torch.nn.Module, spec: dict, shape: tuple[int, int, int], *, config: ExperimentConfig,
                 classes: tuple[str, ...], dense_macs: int):  # fmt: skip
    """An extra static family for the experiment: MDP's structure at a MAC budget, fine-tuned like the others."""
    aap = config.aap

    def run(mac_fraction: float, *, train, test, teacher, epochs: int, log) -> StaticRun:
        order = list(batches(len(train), aap.batch_size, seed=aap.seed, epoch=0))[:IMPORTANCE_BATCHES]
        pruned = prune_to_macs(
            copy.deepcopy(dense), spec, (3, *shape), mac_fraction, (train.batch(i) for i in order),
            grid=TableGrid(step=8, max_points=16),
        )  # fmt: skip
        history = finetune(
            pruned.model, pruned.model, train, epochs=epochs, lr=config.comparison.static_lr,
            batch_size=aap.batch_size, seed=aap.seed, teacher=teacher, distill_weight=aap.distill_weight,
            distill_temperature=aap.distill_temperature, progress=False, desc="mdp", log=log,
        )  # fmt: skip
        model = FixedCostModel(pruned.model, macs=pruned.mac_fraction * dense_macs, dense_macs=dense_macs)
        result = evaluate(model, test, classes=classes, progress=False)
        summary = {"plan": pruned.plan.to_dict(), **run_summary(result, dense_macs=dense_macs), "history": history}
        return StaticRun(summary, result.records, dense_forward(pruned.model.eval()), model)

    return run


def stacked_run(loaded, config: ExperimentConfig, mac_fraction: float, *, dense_macs: int, log=print) -> dict:
    """MDP at ``mac_fraction`` (fine-tuned like the MDP baseline), then AVA + AAP on it toward the experiment's
    target of the dense MACs: summaries, per-clip records and timings."""
    from dance3d.dance.compare import EveryNthFrame
    from dance3d.dance.pipeline import aap_stage, ava_stage, dense_teacher
    from dance3d.mdp.checkpoint import build_pruned_backbone, pruned_spec

    started = time.perf_counter()
    shape = (loaded.data.num_frames, loaded.data.height, loaded.data.width)
    _, train, val, test = comparison_splits(loaded.data, loaded.classes, config.comparison)
    teacher = dense_teacher(loaded.model, train, shape=shape)
    mdp = mdp_baseline(loaded.model, loaded.checkpoint["model"], shape, config=config, classes=loaded.classes,
                       dense_macs=dense_macs)(mac_fraction, train=train, test=test, teacher=teacher,
                                              epochs=config.aap.epochs + config.aap.joint_epochs, log=log)  # fmt: skip
    backbone = build_pruned_backbone(pruned_spec(loaded.checkpoint["model"], (3, *shape), _plan(mdp.summary)))
    backbone.load_state_dict(mdp.model.model.state_dict())
    pruned_fraction = mdp.summary["mean_mac_fraction"]
    amplified, _, _ = ava_stage(backbone.eval(), train, val, config.ava, shape=shape, log=log)
    target = min(1.0, config.aap.target_mac_fraction / pruned_fraction)
    outcome = aap_stage(amplified, train, replace(config.aap, target_mac_fraction=target), shape=shape,
                        dynamic=config.dynamic, teacher=teacher, log=log)  # fmt: skip
    model = EveryNthFrame(outcome.model.eval(), 1, outcome.model.dense_macs / dense_macs)
    result = evaluate(model, test, classes=loaded.classes, progress=False)
    summary = {"mdp_mac_fraction": pruned_fraction, "aap_target_of_pruned": target, "mdp_plan": mdp.summary["plan"],
               **run_summary(result, dense_macs=dense_macs), "history": outcome.history}  # fmt: skip
    return {"stacked": summary, "mdp_alone_at_stack": mdp.summary, "records": result.records,
            "mdp_records": mdp.records, "total_s": time.perf_counter() - started}  # fmt: skip


def _plan(summary: dict):
    from dance3d.mdp.plan import PrunePlan

    return PrunePlan.from_dict(summary["plan"])


def print_runs(dense_top1: float, runs: dict) -> None:
    rows = [{"model": "dense", "top1": dense_top1, "mean_mac_fraction": 1.0}]
    rows += [{"model": n, "top1": r["top1"], "mean_mac_fraction": r["mean_mac_fraction"],
              "latency_ms_batch1": r.get("compact_latency_ms_batch1")} for n, r in runs.items()]  # fmt: skip
    print(pd.DataFrame(rows).set_index("model").to_string(float_format=lambda x: f"{x:.4f}"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dense_checkpoint.is_file():
        print(f"error: no dense checkpoint at {args.dense_checkpoint} (train it first: see --help)", file=sys.stderr)
        return 2
    if args.stack_mdp and not designed_clips(args).is_file():
        print(f"error: run the designed benchmark for seed {args.seed} first ({designed_clips(args)} is missing)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    retain_freed_memory()
    torch.manual_seed(args.seed)
    config = experiment_config(args)
    loaded = load_model(args.dense_checkpoint)
    if not loaded.data.untrimmed:
        print(f"error: {args.dense_checkpoint} was not trained on untrimmed clips", file=sys.stderr)
        return 2
    shape = (loaded.data.num_frames, loaded.data.height, loaded.data.width)
    extra = {"mdp": mdp_baseline(loaded.model, loaded.checkpoint["model"], shape, config=config,
                                 classes=loaded.classes, dense_macs=dense_mac_count(loaded.model, shape))}  # fmt: skip
    folder = ResultDir(args.results_dir, BENCHMARK, result_tag(args))
    settings = {
        "model": loaded.checkpoint["model"],
        "dense_checkpoint": str(args.dense_checkpoint),
        "clip_shape": list(shape),
        **to_dict(config),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "target_rules": TARGET_RULES,
    }
    machine = {**collect_env(), "note": "2 CPU cores shared with other jobs; timings are indicative"}
    common = {"benchmark": BENCHMARK, "tag": folder.tag, "seed": args.seed, "quick": args.quick, "machine": machine}
    if args.stack_mdp:
        return stacked_main(args, loaded, config, common, settings)
    if args.baselines_only:
        done = run_baselines(loaded.model, loaded.data, loaded.classes, config, mac_fraction=DESIGN_TARGET,
                             extra_baselines=extra)  # fmt: skip
        print_runs(done.dense["top1"], done.runs)
        clips = [{"model": name, **record} for name, rows in done.records.items() for record in rows]
        pd.DataFrame(clips).to_parquet(folder.file("clips.parquet"), index=False)
        payload = {**common, "settings": {**settings, "data": asdict(done.data), "num_clips": done.clip_counts},
                   "dense": done.dense, "runs": done.runs, "targets": {}, "timings_s": done.timings_s,
                   "per_clip_table": "clips.parquet"}  # fmt: skip
        print(f"wrote {save_result(payload, args.results_dir)}")
        return 0

    partial = folder.file("partial.json")
    experiment = run_experiment(
        loaded.model, loaded.data, loaded.classes, config, progress_path=partial, extra_baselines=extra
    )
    families = [k.name for k in experiment.kinds] + list(extra)
    targets = untrimmed_targets(
        experiment.runs, experiment.paired, dense_top1=experiment.dense["top1"], baselines=families
    )
    test = experiment.records["dance"]
    from dance3d.dance.data import cached_split  # the experiment's own test clips (cached)

    cache = cached_split(experiment.data, "test", classes=loaded.classes, limit=config.comparison.test_clips)
    per_clip, keep = event_frame_keep(experiment.dance_model, cache)
    per_clip["event_length"] = [r["event_length"] for r in test]
    per_clip["frames_needed"] = [r["frames_needed"] for r in test]
    per_clip["mac_fraction"] = [r["mac_fraction"] for r in test]
    per_clip["event_start"] = [r["event_start"] for r in test]
    per_clip["keep_per_frame"] = list(keep)  # the (T,) input-frame keep rates: redraws kept_frames.png
    per_clip.to_parquet(folder.file("frames.parquet"), index=False)
    plot_kept_frames(keep, cache.metas, folder.file("kept_frames.png"))
    plot_tradeoff(tradeoff_series(experiment.runs, experiment.kinds) | {
        f"static: {name}": [(experiment.runs[f"{name}_at_dance"]["mean_mac_fraction"],
                             experiment.runs[f"{name}_at_dance"]["top1"])] for name in extra},
        folder.file("tradeoff.png"), dense_top1=experiment.dense["top1"])  # fmt: skip
    clips = [{"model": name, **record} for name, rows in experiment.records.items() for record in rows]
    pd.DataFrame(clips).to_parquet(folder.file("clips.parquet"), index=False)
    print_runs(experiment.dense["top1"], experiment.runs)
    for name, gap in experiment.paired.items():
        print(f"{name}: {gap['top1_diff_points']:+.2f} points, McNemar p = {gap['mcnemar_p']:.3g}")
    frames = keep_summary(per_clip)
    print("frames: " + ", ".join(f"{k} {v:.3f}" for k, v in frames.items()))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in targets.items()))
    dance = experiment.runs["dance"]
    out = save_result(
        {
            **common,
            "settings": {**settings, "data": asdict(experiment.data), "num_clips": experiment.clip_counts},
            "dense": experiment.dense,
            "ava": experiment.ava,
            "runs": experiment.runs,
            "summary": {
                "top1_drop_points": 100 * (experiment.dense["top1"] - dance["top1"]),
                "spearman_mac_fraction_vs_frames_needed": dance["spearman_mac_fraction_vs_clip_factor"].get(
                    "frames_needed"
                ),
                "event_frames": frames,
            },
            "targets": targets,
            "paired_comparisons": experiment.paired,
            "timings_s": experiment.timings_s,
            "figures": ["kept_frames.png", "tradeoff.png"],
            "per_clip_table": "clips.parquet",
            "event_frames_table": "frames.parquet",
        },
        args.results_dir,
    )
    partial.unlink(missing_ok=True)
    print(f"wrote {out} in {experiment.timings_s['total_s']:.0f} s")
    return 0


def designed_clips(args: argparse.Namespace) -> Path:
    """The per-clip table of the designed run a ``--stack-mdp`` run is paired with (same seed, same clips)."""
    designed_tag = result_tag(argparse.Namespace(**{**vars(args), "stack_mdp": None}))
    return args.results_dir / BENCHMARK / designed_tag / "clips.parquet"


def stacked_main(args, loaded, config, common: dict, settings: dict) -> int:
    """``--stack-mdp F``: the stacked run, paired with the designed run of the same seed on the same test clips."""
    from dance3d.reporting import paired_accuracy

    shape = (loaded.data.num_frames, loaded.data.height, loaded.data.width)
    designed = designed_clips(args)
    done = stacked_run(loaded, config, args.stack_mdp, dense_macs=dense_mac_count(loaded.model, shape))
    others = pd.read_parquet(designed)
    paired = {f"stacked_vs_{name}": paired_accuracy(done["records"], rows.to_dict("records"))
              for name, rows in others.groupby("model") if name in ("dense", "dance", "mdp_at_dance")}  # fmt: skip
    paired["stacked_vs_mdp_alone_at_stack"] = paired_accuracy(done["records"], done["mdp_records"])
    stacked = done["stacked"]
    print(f"stacked: top-1 {stacked['top1']:.4f} at {stacked['mean_mac_fraction']:.3f} (MDP alone at "
          f"{stacked['mdp_mac_fraction']:.3f}: {done['mdp_alone_at_stack']['top1']:.4f})")  # fmt: skip
    for name, gap in paired.items():
        print(f"{name}: {gap['top1_diff_points']:+.2f} points, McNemar p = {gap['mcnemar_p']:.3g}")
    folder = ResultDir(args.results_dir, BENCHMARK, common["tag"])
    pd.DataFrame(done["records"]).to_parquet(folder.file("clips.parquet"), index=False)
    payload = {**common, "settings": {**settings, "stack_mdp_mac_fraction": args.stack_mdp,
                                      "compared_with": str(designed.relative_to(args.results_dir))},
               "runs": {"stacked": stacked, "mdp_alone_at_stack": done["mdp_alone_at_stack"]},
               "paired_comparisons": paired, "targets": {}, "timings_s": {"total_s": done["total_s"]},
               "per_clip_table": "clips.parquet"}  # fmt: skip
    print(f"wrote {save_result(payload, args.results_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
