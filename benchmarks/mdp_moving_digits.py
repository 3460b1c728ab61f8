"""MDP on moving-digits, single-thread CPU: MDP vs uniform width scaling, magnitude pruning and greedy latency-aware
pruning at equal measured latency.

    python benchmarks/mdp_moving_digits.py [--checkpoint runs/dense/model.pt] [--out runs/bench-mdp] [--quick]

1. A dense ``tiny`` checkpoint (trained here on 16x64x64 clips unless ``--checkpoint`` is given; 64x64
   because at 32x32 the last stage's layers run on 8x4x4 volumes in well under a millisecond, too
   little to time reliably next to Python overhead).
2. The latency table of that model with ``torch.set_num_threads(1)`` semantics (runtime threads=1),
   calibrated on a few pruned models (the latency model with the smallest leave-one-out error is
   kept) and validated on others (predicted vs measured).
3. For each target (fraction of dense latency): MDP solves, materialises and measures, tightening
   its budget while the solution measures over the target (``dance3d.mdp.refine``); then the baselines
   of ``dance3d.mdp.baselines``: (a) uniform width scaling (every group the same fraction,
   Taylor-chosen channels), (b) magnitude pruning (inner channels by filter L1 norm, residual stream
   dense, as the static DANCE baseline; below its narrowest inner widths the stream shrinks too) and
   (c) greedy latency-aware pruning (HALP-style: the width step losing the least Taylor importance
   per predicted ms saved, repeatedly; no block removal) are each shrunk until their *measured*
   latency is at most MDP's measured latency (2% timing tolerance). This is done for all targets
   first, straight after the table, so that all timing happens in one stretch.
   Then all picked models and the dense one are timed again together, round-robin (as the table's
   validation models are); ``measured_ms`` and the prediction error come from these timings
   (``matched_ms`` is the timing the choice was made on). Last, all are fine-tuned with the same
   trainer settings and evaluated on test.
4. The MILP solve time on r2plus1d_18 (untrained; synthetic MAC-proportional latency table).

Writes ``benchmarks/results/mdp_moving_digits/<tag>/result.json`` (tag ``default`` unless ``--tag``; a
``--quick`` run appends ``-quick``) through ``dance3d.benchmark_results``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dance3d.benchmark_results import save_result
from dance3d.checkpoint import load_checkpoint, load_network
from dance3d.config import to_dict
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.evaluation import evaluate
from dance3d.mdp.baselines import TOLERANCE
from dance3d.mdp.calibration import measure_table, summarize_validation
from dance3d.mdp.comparison import finetune_and_test, measure_plan_ms, pick_at_equal_latency
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import Importance, magnitude_importance, taylor_importance
from dance3d.mdp.lut import LatencyRuntime, LatencyTable, LayerTable, error_pct
from dance3d.mdp.lut_measure import TableGrid, measure_models_ms
from dance3d.mdp.plan import width_grid
from dance3d.mdp.problem import build_problem
from dance3d.mdp.solver import SolverConfig, solve
from dance3d.models import create_model
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling import collect_env

BENCHMARK = "mdp_moving_digits"
RESULTS = Path(__file__).resolve().parent / "results"


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "data": DataConfig(num_frames=8, height=32, width=32, num_train=96, num_val=32, num_test=48),
            "dense_train": TrainConfig(model="tiny", epochs=1, num_workers=0, progress=False),
            "finetune": TrainConfig(model="tiny", epochs=1, lr=1e-3, warmup_steps=5, num_workers=0, progress=False),
            "targets": (0.6,),
            "repeats": 3,
            "rounds": 2,
            "calibrate": 2,
            "validate": 2,
            "importance_batches": 2,
            "r2plus1d_clip": (3, 4, 32, 32),
        }
    return {
        "data": DataConfig(num_frames=16, height=64, width=64),
        "dense_train": TrainConfig(model="tiny", epochs=6, num_workers=1),
        "finetune": TrainConfig(model="tiny", epochs=2, lr=1e-3, warmup_steps=10, num_workers=1),
        "targets": (0.75, 0.5, 0.35),
        "repeats": 10,
        "rounds": 3,
        "calibrate": 6,
        "validate": 8,
        "importance_batches": 8,
        "r2plus1d_clip": (3, 16, 112, 112),
    }


def dense_checkpoint(args: argparse.Namespace, cfg: dict[str, Any], out: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    path = out / "dense" / "model.pt"
    if path.is_file() and load_checkpoint(path).get("epochs_done", 0) >= cfg["dense_train"].epochs:
        return path
    shutil.rmtree(out / "dense", ignore_errors=True)
    return train(RunConfig(data=cfg["data"], train=cfg["dense_train"]), out / "dense").checkpoint_path


def synthetic_r2plus1d_solve(clip_shape: tuple[int, int, int, int]) -> dict[str, Any]:
    """Solve time of the MILP on r2plus1d_18 with MAC-proportional layer latencies and random importance."""
    structure = extract_structure(create_model("r2plus1d_18", num_classes=400), clip_shape)
    grids = {g: width_grid(info.width, step=16, max_points=16) for g, info in structure.groups.items()}
    layers = {}
    for name, layer in structure.layers.items():
        module = structure.graph_module.get_submodule(name)
        per_channel = float(np.prod(getattr(module, "kernel_size", (1,)))) * float(np.prod(layer.input_shape[2:]))
        per_channel /= float(np.prod(getattr(module, "stride", (1,))))
        axes_widths = [np.asarray(grids[a], dtype=float) for a in layer.axes]
        mesh = np.meshgrid(*axes_widths, indexing="ij") if axes_widths else []
        cin = mesh[layer.axes.index(layer.in_group)] if layer.in_group else layer.in_channels
        cout = mesh[layer.axes.index(layer.out_group)] if layer.out_group else layer.out_channels
        macs = cout * (1 if layer.depthwise else cin) * per_channel
        layers[name] = LayerTable(layer.axes, tuple(grids[a] for a in layer.axes), np.asarray(macs) * 1e-9, layer.block)
    table = LatencyTable({"name": "r2plus1d_18", "num_classes": 400}, clip_shape, LatencyRuntime(), layers, 0.0, grids)
    table.dense_latency_ms = table.dense_entries_ms
    generator = torch.Generator().manual_seed(0)
    importance = Importance(
        {g: torch.rand(info.width, generator=generator) for g, info in structure.groups.items()},
        {b: float(torch.rand(1, generator=generator)) * 5 for b in structure.blocks},
    )
    rows = []
    for fraction in (0.7, 0.5, 0.3):
        problem = build_problem(structure, table, importance, budget_ms=fraction * table.dense_latency_ms)
        solution = solve(problem, SolverConfig(time_limit_s=120.0))
        rows.append({"target": fraction, **{k: v for k, v in solution.to_dict().items() if k != "widths"}})
    return {"clip_shape": list(clip_shape), "groups": len(structure.groups), "blocks": len(structure.blocks),
            "grid_points_per_group": {g: len(w) for g, w in grids.items()}, "solves": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="dense tiny checkpoint to start from (default: train one)")
    parser.add_argument("--out", default="runs/bench-mdp")
    parser.add_argument("--quick", action="store_true", help="smoke run: small clips and splits, 1 target, 1 epoch")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", default="default", help="the run's name (default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = settings(args.quick)
    out = Path(args.out)
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

    table = measure_table(dense, spec, clip_shape, runtime=runtime, grid=TableGrid(step=8, max_points=8),
                          calibrate=cfg["calibrate"], validate=cfg["validate"], seed=0)  # fmt: skip
    table.save(out / "lut.json")
    timings_s["latency_table"] = time.perf_counter() - started - sum(timings_s.values())
    structure = extract_structure(dense, clip_shape)
    train_set = build_dataset(cfg["data"], "train", classes=classes)
    loader = torch.utils.data.DataLoader(train_set, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    batches = [(b["clip"], b["label"]) for _, b in zip(range(cfg["importance_batches"]), loader, strict=False)]
    taylor = taylor_importance(structure, batches, progress=False)
    magnitude = magnitude_importance(structure)
    dense_test = evaluate(dense, build_dataset(cfg["data"], "test", classes=classes), classes=classes,
                          batch_size=32, progress=False).top1  # fmt: skip

    # Phase 1, right after the table: every latency-dependent choice (MDP's measured budget
    # correction, the baselines' latency matching), so all timing sits in one stretch of time.
    phase_started = time.perf_counter()
    picks = pick_at_equal_latency(structure, table, taylor=taylor, magnitude=magnitude, targets=cfg["targets"],
                                  measure=lambda plan: measure_plan_ms(structure, plan, runtime))  # fmt: skip
    timings_s["solve_and_match"] = time.perf_counter() - phase_started

    # Phase 2: all picked models and the dense one timed again together, round-robin, as the
    # table's validation models were; the prediction error is read from these timings.
    check_ms = measure_models_ms([dense, *(pick.model(structure) for pick in picks)], clip_shape, runtime)
    dense_check_ms, check_ms = check_ms[0], check_ms[1:]

    # Phase 3: fine-tune and test every picked model (no timing from here on).
    phase_started = time.perf_counter()
    rows = []
    finetune_run = RunConfig(data=cfg["data"], train=cfg["finetune"])
    for pick, checked in zip(picks, check_ms, strict=True):
        tuned = finetune_and_test(structure, pick, dense_spec=spec, run=finetune_run, classes=classes,
                                  out=out / "finetune" / f"{pick.target}-{pick.method}")  # fmt: skip
        predicted = table.predict_ms(pick.plan)
        rows.append({
            "target": pick.target, "method": pick.method, "budget_ms": pick.target * table.dense_latency_ms,
            "predicted_ms": predicted, "matched_ms": pick.matched_ms, "measured_ms": checked,
            "prediction_error_pct": error_pct(predicted, checked),
            "removed_blocks": list(pick.plan.removed_blocks), "widths": pick.plan.widths, **pick.extra,
            "top1_before_finetune": tuned.top1_before_finetune, "top1": tuned.top1, "finetune_s": tuned.finetune_s,
        })  # fmt: skip

    timings_s["finetune_and_test"] = time.perf_counter() - phase_started
    phase_started = time.perf_counter()
    r2plus1d = synthetic_r2plus1d_solve(cfg["r2plus1d_clip"])
    timings_s["r2plus1d_18_solve"] = time.perf_counter() - phase_started
    validation = summarize_validation(table.validation)
    targets = {
        "mdp_prediction_within_10pct": all(abs(r["prediction_error_pct"]) <= 10 for r in rows if r["method"] == "mdp"),
        "mdp_at_least_as_accurate": all(
            next(r["top1"] for r in rows if r["target"] == t and r["method"] == "mdp")
            >= max(r["top1"] for r in rows if r["target"] == t and r["method"] != "mdp")
            for t in cfg["targets"]
        ),
        "r2plus1d_solve_under_10s": all(s["solve_s"] < 10 for s in r2plus1d["solves"]),
        "mdp_measured_within_budget_2pct": all(
            r["matched_ms"] <= 1.02 * r["budget_ms"] for r in rows if r["method"] == "mdp"
        ),
    }
    timings_s["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": args.tag + ("-quick" if args.quick else ""),  # a smoke run never replaces a real result
        "seed": cfg["dense_train"].seed,  # training, importance batches and table validation models use seed 0
        "quick": args.quick,
        "settings": {
            **{k: to_dict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in cfg.items()},
            "checkpoint": args.checkpoint,
            "runtime": to_dict(runtime),
            "baseline_tolerance": TOLERANCE,
        },
        "machine": collect_env(),
        "timings_s": timings_s,
        "targets": targets,
        "checkpoint": str(checkpoint_path),
        "dense_test_top1": dense_test,
        "dense_latency_ms": table.dense_latency_ms,
        "dense_check_ms": dense_check_ms,  # the dense model timed again beside the picked models
        "latency_model": {
            "selected": table.selected.to_dict(),  # what predicted_ms and the solver's budget use
            "candidates": [c.to_dict() for c in table.predictor_candidates],  # leave-one-out errors
            "scale": table.scale,  # the calibrated fit
            "overhead_ms": table.offset_ms,
            "validation": table.validation,
            "validation_summary": validation,
        },  # fmt: skip
        "rows": rows,
        "r2plus1d_18_solve": r2plus1d,
    }
    print_report(payload)
    print(f"wrote {save_result(payload, args.results_root)}")


def print_report(payload: dict[str, Any]) -> None:
    import pandas as pd

    print(
        f"dense: {payload['dense_latency_ms']:.2f} ms in the table, {payload['dense_check_ms']:.2f} ms beside the "
        f"picked models, test top-1 {payload['dense_test_top1']:.4f}"
    )
    selected = payload["latency_model"]["selected"]
    error = selected["cv_mean_abs_error_pct"]
    held_out = "" if error is None else f" (leave-one-out mean |error| {error:.2f}%)"
    print(f"latency model: {selected['name']}{held_out}")
    print("latency model validation (held-out pruned models):")
    print(pd.DataFrame(payload["latency_model"]["validation"]).drop(columns=["plan"]).to_string(
        index=False, float_format=lambda v: f"{v:.2f}"))  # fmt: skip
    table = pd.DataFrame(payload["rows"])
    table["removed"] = table["removed_blocks"].map(len)
    table["rounds"] = table["rounds"].map(lambda r: len(r) if isinstance(r, list) else 0)
    columns = ["target", "method", "budget_ms", "rounds", "predicted_ms", "matched_ms", "measured_ms",
               "prediction_error_pct",
               "removed", "top1_before_finetune", "top1"]  # fmt: skip
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    solves = pd.DataFrame(payload["r2plus1d_18_solve"]["solves"])
    print("r2plus1d_18 MILP:")
    print(solves[["target", "solve_s", "mip_gap", "status", "num_variables"]].to_string(index=False))
    print("targets:", payload["targets"], f"(wall {payload['timings_s']['total'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
