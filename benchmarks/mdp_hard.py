"""MDP where pruning hurts, single-thread CPU: a capacity-bound task (moving-digits ``digit-direction``, 80 classes)
on ``tiny-deep`` (3 blocks per stage, so removing a block is a real option), MDP against uniform width scaling,
magnitude (L1) channel pruning and greedy latency-aware (HALP-style) pruning at equal measured latency.

    python benchmarks/mdp_hard.py [--seed N] [--out runs/bench-mdp-hard] [--threads 1] [--dense-epochs 8] [--quick]

1. A dense ``tiny-deep`` on 16x32x32 clips, trained once with seed 0 into ``OUT/dense`` (reused by every seed;
   ``--checkpoint`` gives another one).
2. This seed's latency table of it (1 thread, calibrated; the latency model with the smallest leave-one-out
   error predicts), Taylor importance on this seed's training batches, filter L1 norms.
3. Per target (fraction of dense latency, lowest 0.3): MDP solves and tightens its budget until it measures
   within it; each baseline is shrunk until it measures at most MDP's latency (``dance3d.mdp.comparison``); at
   the two lowest targets a baseline left under 0.95 of MDP's latency also gets its next wider plan
   (``<baseline>-wider``, slower than MDP). Then all picked models and the dense one are timed again together,
   round-robin (``measured_ms``).
4. Every pick is fine-tuned with the same trainer settings (this seed) and evaluated on the same test clips;
   MDP is compared with each baseline clip by clip (McNemar's exact test).

Writes ``benchmarks/results/mdp_hard/<tag>/`` (tag ``default``, ``default-seedN`` for seed N > 0, ``-quick`` for a
smoke run): ``result.json``, ``clips.parquet`` (one row per model and test clip) and ``structures.png`` (widths
and removed blocks per target and method).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dance3d.benchmark_results import ResultDir
from dance3d.checkpoint import load_checkpoint, load_network
from dance3d.config import to_dict
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.evaluation import evaluate
from dance3d.mdp.baselines import TOLERANCE
from dance3d.mdp.calibration import measure_table, summarize_validation
from dance3d.mdp.comparison import (
    finetune_and_test,
    measure_plan_ms,
    paired_comparisons,
    pick_at_equal_latency,
    target_rules,
)
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import magnitude_importance, taylor_importance
from dance3d.mdp.lut import LatencyRuntime, error_pct
from dance3d.mdp.lut_measure import TableGrid, measure_models_ms
from dance3d.mdp.plots import plot_structures
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling import collect_env

BENCHMARK = "mdp_hard"
RESULTS = Path(__file__).resolve().parent / "results"
DENSE_SEED = 0  # the dense model every seed prunes


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "data": DataConfig(
                num_frames=8, height=32, width=32, task="digit-direction", num_train=64, num_val=16, num_test=48
            ),  # fmt: skip
            "dense_train": TrainConfig(model="tiny-deep", epochs=1, num_workers=0, progress=False),
            "finetune": TrainConfig(
                model="tiny-deep", epochs=1, lr=1e-3, warmup_steps=2, num_workers=0, progress=False
            ),  # fmt: skip
            "targets": (0.6, 0.3),
            "repeats": 3,
            "rounds": 1,
            "calibrate": 2,
            "validate": 1,
            "importance_batches": 2,
        }
    return {
        "data": DataConfig(num_frames=16, height=32, width=32, task="digit-direction"),
        "dense_train": TrainConfig(model="tiny-deep", epochs=8, num_workers=0, progress=False),
        "finetune": TrainConfig(
            model="tiny-deep", epochs=2, lr=1e-3, warmup_steps=10, num_workers=0, progress=False
        ),  # fmt: skip
        "targets": (0.6, 0.45, 0.3),
        "repeats": 10,
        "rounds": 3,
        "calibrate": 6,
        "validate": 6,
        "importance_batches": 8,
    }


def dense_checkpoint(args: argparse.Namespace, cfg: dict[str, Any], out: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    path = out / "dense" / "model.pt"
    if path.is_file() and load_checkpoint(path).get("epochs_done", 0) >= cfg["dense_train"].epochs:
        return path
    shutil.rmtree(out / "dense", ignore_errors=True)
    run = RunConfig(data=cfg["data"], train=replace(cfg["dense_train"], seed=DENSE_SEED, threads=args.threads))
    return train(run, out / "dense").checkpoint_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="dense tiny-deep checkpoint to start from (default: train one)")
    parser.add_argument("--seed", type=int, default=0, help="table models, importance batches, fine-tuning")
    parser.add_argument("--dense-epochs", type=int, help="epochs of the dense model trained here (default: 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (timing: always 1)")
    parser.add_argument("--out", default="runs/bench-mdp-hard")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny splits, 8 frames, 2 targets, 1 epoch")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", default="default", help="the run's name (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.seed < 0 or (args.dense_epochs is not None and args.dense_epochs < 1):
        parser.error("--threads and --dense-epochs must be >= 1 and --seed >= 0")
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    if args.dense_epochs:
        cfg["dense_train"] = replace(cfg["dense_train"], epochs=args.dense_epochs)
    cfg["finetune"] = replace(cfg["finetune"], seed=args.seed, threads=args.threads)
    out = Path(args.out)
    tag = args.tag + (f"-seed{args.seed}" if args.seed else "") + ("-quick" if args.quick else "")
    result_dir = ResultDir(args.results_root, BENCHMARK, tag)
    started = time.perf_counter()
    timings_s = {}
    checkpoint_path = dense_checkpoint(args, cfg, out)
    timings_s["dense_checkpoint"] = time.perf_counter() - started
    checkpoint = load_checkpoint(checkpoint_path)
    cfg["data"] = DataConfig(**checkpoint["data"])
    spec, classes = checkpoint["model"], tuple(checkpoint["classes"])
    dense = load_network(checkpoint, source=checkpoint_path)
    clip_shape = (3, cfg["data"].num_frames, cfg["data"].height, cfg["data"].width)
    runtime = LatencyRuntime(device="cpu", threads=1, precision="fp32", warmup=5, repeats=cfg["repeats"],
                             rounds=cfg["rounds"])  # fmt: skip
    phase = time.perf_counter()
    table = measure_table(dense, spec, clip_shape, runtime=runtime, grid=TableGrid(step=8, max_points=8),
                          calibrate=cfg["calibrate"], validate=cfg["validate"], seed=args.seed)  # fmt: skip
    table.save(out / f"lut-seed{args.seed}.json")
    timings_s["latency_table"] = time.perf_counter() - phase
    structure = extract_structure(dense, clip_shape)
    loader = torch.utils.data.DataLoader(build_dataset(cfg["data"], "train", classes=classes), batch_size=16,
                                         shuffle=True, generator=torch.Generator().manual_seed(args.seed))  # fmt: skip
    batches = [(b["clip"], b["label"]) for _, b in zip(range(cfg["importance_batches"]), loader, strict=False)]
    taylor = taylor_importance(structure, batches, progress=False)
    dense_eval = evaluate(dense, build_dataset(cfg["data"], "test", classes=classes), classes=classes,
                          batch_size=32, progress=False)  # fmt: skip

    # All timing in one stretch right after the table: the picks, then every pick and the dense model together.
    phase = time.perf_counter()
    picks = pick_at_equal_latency(structure, table, taylor=taylor, magnitude=magnitude_importance(structure),
                                  targets=cfg["targets"], bracket_targets=sorted(cfg["targets"])[:2],
                                  measure=lambda plan: measure_plan_ms(structure, plan, runtime))  # fmt: skip
    check_ms = measure_models_ms([dense, *(p.model(structure) for p in picks)], clip_shape, runtime)
    dense_check_ms, check_ms = check_ms[0], check_ms[1:]
    timings_s["pick_and_time"] = time.perf_counter() - phase

    phase = time.perf_counter()
    finetune_run = RunConfig(data=cfg["data"], train=cfg["finetune"])
    rows, records = [], {}
    for pick, measured in zip(picks, check_ms, strict=True):
        tuned = finetune_and_test(structure, pick, dense_spec=spec, run=finetune_run, classes=classes,
                                  out=out / f"seed{args.seed}" / f"{pick.target}-{pick.method}")  # fmt: skip
        records[(pick.target, pick.method)] = tuned.records
        predicted = table.predict_ms(pick.plan)
        rows.append({
            "target": pick.target, "method": pick.method, "budget_ms": pick.target * table.dense_latency_ms,
            "predicted_ms": predicted, "matched_ms": pick.matched_ms, "measured_ms": measured,
            "prediction_error_pct": error_pct(predicted, measured), "removed_blocks": list(pick.plan.removed_blocks),
            "widths": pick.plan.widths, **pick.extra, "top1_before_finetune": tuned.top1_before_finetune,
            "top1": tuned.top1, "finetune_s": tuned.finetune_s,
        })  # fmt: skip
    timings_s["finetune_and_test"] = time.perf_counter() - phase
    pairs = paired_comparisons(rows, records)
    targets = target_rules(rows, pairs)

    clips = [{"seed": args.seed, "target": 1.0, "method": "dense", **{k: r[k] for k in ("index", "label",
             "prediction", "correct")}} for r in dense_eval.records]  # fmt: skip
    clips += [{"seed": args.seed, "target": t, "method": m, **r} for (t, m), recs in records.items() for r in recs]
    pd.DataFrame(clips).to_parquet(result_dir.file("clips.parquet"), index=False)
    dense_widths = structure.full_widths()
    block_groups = {name: block.groups for name, block in structure.blocks.items()}
    plot_structures(rows, dense_widths, block_groups, result_dir.file("structures.png"))
    timings_s["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": tag,
        "seed": args.seed,
        "quick": args.quick,
        "settings": {
            **{k: to_dict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in cfg.items()},
            "dense_seed": DENSE_SEED,
            "checkpoint": args.checkpoint,
            "threads": args.threads,
            "runtime": to_dict(runtime),
            "baseline_tolerance": TOLERANCE,
        },
        "machine": collect_env(),
        "timings_s": timings_s,
        "targets": targets,
        "checkpoint": str(checkpoint_path),
        "dense_test_top1": dense_eval.top1,
        "dense_latency_ms": table.dense_latency_ms,
        "dense_check_ms": dense_check_ms,
        "dense_widths": dense_widths,
        "blocks": {name: list(groups) for name, groups in block_groups.items()},
        "latency_model": {
            "selected": table.selected.to_dict(),
            "candidates": [c.to_dict() for c in table.predictor_candidates],
            "validation": table.validation,
            "validation_summary": summarize_validation(table.validation),
        },
        "block_importance": taylor.blocks,
        "rows": rows,
        "paired": pairs,
    }
    print_report(payload)
    print(f"wrote {result_dir.save(payload)}")


def print_report(payload: dict[str, Any]) -> None:
    print(f"dense: {payload['dense_latency_ms']:.2f} ms in the table ({payload['dense_check_ms']:.2f} ms beside the "
          f"picks), test top-1 {payload['dense_test_top1']:.4f}; latency model "
          f"{payload['latency_model']['selected']['name']}")  # fmt: skip
    table = pd.DataFrame(payload["rows"])
    table["removed"] = table["removed_blocks"].map(len)
    columns = ["target", "method", "budget_ms", "predicted_ms", "matched_ms", "measured_ms", "prediction_error_pct",
               "removed", "top1_before_finetune", "top1"]  # fmt: skip
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("MDP against each baseline on the same test clips (points: MDP minus baseline):")
    print(pd.DataFrame(payload["paired"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("targets:", payload["targets"], f"(wall {payload['timings_s']['total'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
