"""DANCE on moving-digits with the ``tiny`` model: dense -> AVA -> AAP, ablations, static baselines.

Writes ``benchmarks/results/dance_moving_digits.json`` and PNG figures next to it (a checkpoint
trained on another moving-digits task, e.g. ``digit-direction``: ``dance_<task>_*``). Usage::

    python benchmarks/dance_moving_digits.py [--dense-checkpoint PATH] [--quick] [--train-clips N]
        [--set aap.mac_penalty=8 ...] [--tag NAME]

Without a dense checkpoint at ``PATH`` (default ``runs/dense/model.pt``) it trains one first.

Static baselines at the mean MACs of DANCE runs: magnitude channel pruning with every frame kept,
and with the residual branches at ``static_frame_keep`` (half) of the frames, evenly spaced, and
correspondingly more channels; their widths are rounded to ``dynamic.channel_multiple`` like
DANCE's levels (oneDNN runs 8 channels as slowly as 16, docs/design.md §2.2): the narrowest rounded widths
that cost at least DANCE's MACs (less 2 points). DANCE must beat both (each where it reaches
DANCE's MACs within 2 points: half the frames with every channel may cost less) to count as
beating the static baseline. ``--extra-static-frame-keep F`` adds baselines at fraction ``F`` of the
frames (``static_frames_F_at_*``), which count the same way.
Static channel pruning with unrounded widths is run too, as a reference outside that rule, and
every model's batch-1 latency is measured on 32 test clips, all models interleaved, freed memory
retained (CPU, the benchmark's threads): dense through oneDNN, DANCE and the static models in
compact execution (DANCE with its controller, eager and compiled). Every model's per-clip test
results (correct or not, MAC fraction, keep rates, the clip's metadata) go to ``dance_*clips.parquet``.

``--retarget`` also re-targets the trained DANCE model, without training (``dance3d budget``: one
logit offset fitted on the validation clips), to the mean MAC fraction of every static baseline
and of every curve run, and compares it on the test clips with that model (the static one, or the
AAP run trained for that target): ``dance_retargeted_to_<name>``.

``--quick`` is a smoke run (few clips, one epoch per stage); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from dance3d.dance.aap import AapSettings, teacher_logits, train_aap
from dance3d.dance.ava import AvaSettings, measure_variability, train_ava
from dance3d.dance.data import ClipCache, cached_split
from dance3d.dance.plots import plot_adaptivity, plot_tradeoff, plot_variability
from dance3d.dance.static_baseline import (
    StaticPrunedModel,
    expand,
    finetune_static,
    keep_fraction_for,
    magnitude_decisions,
)
from dance3d.data.moving_digits import CLIP_FACTORS
from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode
from dance3d.dynamic.budget import fit_budget
from dance3d.dynamic.checkpoint import dense_state_dict
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.dynamic.gate_keys import distinct_keep_rates
from dance3d.errors import ConfigError
from dance3d.evaluation import evaluate
from dance3d.loading import load_model
from dance3d.reporting import paired_accuracy, redundancy_spearman
from profiling import collect_env, measure_interleaved, retain_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DENSE = Path("runs/dense/model.pt")


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "num_train_clips": 48,
            "num_val_clips": 32,
            "num_test_clips": 64,
            "ava": AvaSettings(epochs=1, batch_size=16, progress=False),
            "aap": AapSettings(epochs=1, joint_epochs=1, progress=False),
            "curve_targets": (0.5,),
            "static_targets": ("dance",),
            "static_lr": 5e-4,
            "static_frame_keep": 0.5,
            "dynamic": DynamicConfig(),
        }
    return {
        "num_train_clips": 960,
        "num_val_clips": 200,
        "num_test_clips": 800,
        "ava": AvaSettings(epochs=2, batch_size=16, lr=5e-4, variability_weight=0.5, progress=False),
        "aap": AapSettings(
            epochs=2,
            lr=1e-2,
            target_mac_fraction=0.30,
            mac_penalty=4.0,
            joint_epochs=3,
            joint_lr=5e-4,
            progress=False,
        ),
        "curve_targets": (0.2, 0.45),
        "static_targets": ("dance", "dance_target_0.2"),
        "static_lr": 5e-4,
        "static_frame_keep": 0.5,
        "dynamic": DynamicConfig(),
    }


def with_override(cfg: dict[str, Any], override: str) -> dict[str, Any]:
    """``cfg`` with ``ava.X``, ``aap.X`` or ``dynamic.X`` set from ``"section.field=value"`` (value parsed as YAML)."""
    key, sep, value = override.partition("=")
    section, _, name = key.partition(".")
    if not sep or section not in ("ava", "aap", "dynamic") or name not in cfg[section].__dataclass_fields__:
        raise SystemExit(f"--set {override!r}: expected ava.FIELD=VALUE, aap.FIELD=VALUE or dynamic.FIELD=VALUE "
                         "with a known field")  # fmt: skip
    parsed = yaml.safe_load(value)
    parsed = tuple(parsed) if isinstance(parsed, list) else parsed
    try:
        return {**cfg, section: replace(cfg[section], **{name: parsed})}
    except (TypeError, ValueError) as error:
        raise SystemExit(f"--set {override!r}: {error}") from error


def dense_model(path: Path):
    if path.is_file():
        return load_model(path)
    from dance3d.training.trainer import RunConfig, train

    train(RunConfig(), path.parent)  # the default: tiny on moving-digits 16x64x64
    return load_model(path)


def summarise(result, *, dense_macs: int) -> dict[str, Any]:
    records = result.records
    fractions = np.array([r.get("mac_fraction", 1.0) for r in records])
    redundancy = np.array([r["redundancy"] for r in records])
    rho = redundancy_spearman(redundancy, fractions)
    factors = {factor: np.array([r[factor] for r in records]) for factor in CLIP_FACTORS if factor in records[0]}
    by_factor = {  # a factor constant over the clips (no moving clutter, say) has no correlation
        factor: redundancy_spearman(values, fractions) for factor, values in factors.items() if np.ptp(values) > 0
    }
    keys = [k for k in result.clip_stat_summary if "." not in k and k not in ("macs", "mac_fraction")]
    return {
        "top1": result.top1,
        "mean_mac_fraction": float(fractions.mean()),
        "mac_reduction": float(1 - fractions.mean()),
        "mac_fraction_p10": float(np.percentile(fractions, 10)),
        "mac_fraction_p50": float(np.percentile(fractions, 50)),
        "mac_fraction_p90": float(np.percentile(fractions, 90)),
        "mac_fraction_p90_minus_p10": float(np.percentile(fractions, 90) - np.percentile(fractions, 10)),
        "spearman_mac_fraction_vs_redundancy": rho,
        "spearman_mac_fraction_vs_clip_factor": by_factor,  # which parts of the clip the budget follows
        "mean_macs": float(fractions.mean() * dense_macs),
        "keep_rates": {k: result.clip_stat_summary[k]["mean"] for k in keys},
        "distinct_keep_rates_per_gate": distinct_keep_rates(records),  # 1 everywhere: that axis never adapts
    }


def dense_teacher_logits(backbone: torch.nn.Module, clip_shape, train, cache: dict[int, torch.Tensor]) -> torch.Tensor:
    """The logits of ``backbone`` with every unit kept on the training clips, computed once per backbone."""
    if id(backbone) not in cache:
        cache[id(backbone)] = teacher_logits(convert_model(copy.deepcopy(backbone), clip_shape=clip_shape), train)
    return cache[id(backbone)]


def run_aap(
    backbone, clip_shape, train, aap: AapSettings, test, classes, *, dynamic: DynamicConfig, teacher: torch.Tensor
) -> tuple:
    torch.manual_seed(aap.seed)  # the controller's initial weights depend on the seed only, as in `dance3d aap`
    model = convert_model(copy.deepcopy(backbone), clip_shape=clip_shape, config=dynamic)
    started = time.perf_counter()
    history = train_aap(model, train, aap, teacher=teacher, log=print)
    seconds = time.perf_counter() - started
    result = evaluate(model, test, classes=classes, progress=False)
    return model, result, history, seconds


MAC_MATCH = 0.02  # a static baseline counts where its mean MAC fraction is at most this far below DANCE's


def _cycling(forward: Callable[[torch.Tensor], Any], inputs: list[torch.Tensor]) -> Callable[[], Any]:
    """A zero-argument call that runs ``forward`` on the next of ``inputs``, round and round."""
    clips = itertools.cycle(inputs)
    return lambda: forward(next(clips))


def batch1_latency_ms(forwards: dict[str, Callable[[torch.Tensor], Any]], clips: ClipCache, *, count: int = 32,
                      repeats: int = 5) -> dict[str, float]:  # fmt: skip
    """Median batch-1 latency (ms) of each forward over the first ``count`` clips, timed round-robin (machine noise
    hits all alike) after one warm-up pass over the clips; every forward sees the clips in the same order."""
    inputs = [clips.batch(torch.tensor([i]))[0].float() for i in range(min(count, len(clips)))]
    calls = {name: _cycling(forward, inputs) for name, forward in forwards.items()}
    stats = measure_interleaved(calls, warmup=len(inputs), repeats=repeats * len(inputs))
    return {name: s.median_ms for name, s in stats.items()}


def compact_forward(model, decisions=None) -> Callable[[torch.Tensor], Any]:
    """Compact execution of ``model``: its controller's decisions, or fixed ``decisions`` of one clip."""
    set_execution_mode(model, "compact")
    model.eval()
    fixed = None if decisions is None else expand(decisions, 1)
    return lambda clip: model(clip, decisions=fixed)


def dance_forwards(model, clips: ClipCache) -> dict[str, Callable[[torch.Tensor], Any]]:
    """Compact forwards of a DANCE model with its eager and (where it compiles) its ``torch.compile``'d controller."""
    forwards = {"dance": compact_forward(model)}
    compiled = copy.deepcopy(model)
    compiled.compile_controller()
    forward = compact_forward(compiled)
    try:
        with torch.inference_mode():
            forward(clips.batch(torch.tensor([0]))[0].float())  # compiles here
        forwards["dance_compiled_controller"] = forward
    except Exception as error:  # noqa: BLE001 - torch.compile fails in many ways (e.g. no C++ compiler)
        print(f"compiled controller not timed: {error}")
    return forwards


def run_static(
    dense, clip_shape, train, test, classes, mac_fraction: float, cfg, *, frame_keep_fraction: float, seed: int,
    dense_macs: int, channel_multiple: int, teacher: torch.Tensor | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], Callable[[torch.Tensor], Any]]:  # fmt: skip
    """Magnitude pruning at ``mac_fraction``, fine-tuned as long as AAP trains (both phases; with ``teacher``, the
    dense logits, distilled as AAP is); its summary, its per-clip test records and its compact forward."""
    aap = cfg["aap"]
    model = convert_model(copy.deepcopy(dense), clip_shape=clip_shape)
    widths = {"frame_keep_fraction": frame_keep_fraction, "channel_multiple": channel_multiple}
    keep = keep_fraction_for(model, mac_fraction, slack=MAC_MATCH, **widths)
    decisions = magnitude_decisions(model, keep, **widths)
    history = finetune_static(
        model,
        decisions,
        train,
        seed=seed,
        epochs=aap.epochs + aap.joint_epochs + aap.settle_epochs,
        lr=cfg["static_lr"],
        batch_size=aap.batch_size,
        teacher=teacher,
        distill_weight=aap.distill_weight,
        distill_temperature=aap.distill_temperature,
        progress=False,
    )
    result = evaluate(StaticPrunedModel(model, decisions), test, classes=classes, progress=False)
    summary = {
        "channel_keep_fraction": keep,
        "channel_multiple": channel_multiple,
        "kept_channels_per_block": [int(d.channels.sum()) for d in decisions],
        **summarise(result, dense_macs=dense_macs),
        "history": history,
    }
    return summary, result.records, compact_forward(model, decisions)


def beats_static_baselines(runs: dict[str, dict[str, Any]], label: str, kinds: list[str]) -> bool:
    """DANCE run ``label`` more accurate than every static baseline of ``kinds`` (the rounded ones) that spends at
    least about its MACs.

    A baseline that cannot reach them (half the frames with every channel cost less) is left out;
    one that spends more (the narrowest rounded widths may cost more) counts.
    """
    dance = runs[label]
    baselines = [runs[f"{kind}_at_{label}"] for kind in kinds]
    matched = [b["top1"] for b in baselines if b["mean_mac_fraction"] >= dance["mean_mac_fraction"] - MAC_MATCH]
    return bool(matched) and dance["top1"] > max(matched)


def clip_table(records: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per (model, test clip): correctness, MAC fraction and keep rates, and the clip's metadata."""
    return pd.DataFrame([{"model": name, **record} for name, rows in records.items() for record in rows])


RETARGETED = "dance_retargeted_to_"


def paired_comparisons(records: dict[str, list[dict[str, Any]]], static_targets) -> dict[str, dict[str, float]]:
    """Per-clip paired tests (:func:`~dance3d.reporting.paired_accuracy`, "a" = the DANCE run) of each DANCE run
    against the dense model, the run without AVA and its static baselines, and of each re-targeted DANCE model
    against the model whose MACs it was re-targeted to: are the top-1 gaps more than noise?"""
    pairs = [("dance", "dense"), ("dance", "dance_without_ava")]
    statics = [name for name in records if not name.startswith(RETARGETED)]
    pairs += [(label, name) for label in static_targets for name in statics if name.endswith(f"_at_{label}")]
    pairs += [(name, name.removeprefix(RETARGETED)) for name in records if name.startswith(RETARGETED)]
    return {f"{a}_vs_{b}": paired_accuracy(records[a], records[b]) for a, b in pairs if b in records}


def retarget_runs(model, runs: dict[str, dict[str, Any]], val: ClipCache, test: ClipCache, classes, *,
                  dense_macs: int) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:  # fmt: skip
    """The trained DANCE ``model`` re-targeted (fitted on ``val``) to the mean MAC fraction of every static
    baseline and every curve-target run, evaluated on ``test``."""
    references = [name for name in runs if name.startswith(("static", "dance_target_"))]
    out, records = {}, {}
    val_clips = val.clips.float()
    for reference in references:
        target = runs[reference]["mean_mac_fraction"]
        retargeted = copy.deepcopy(model)
        set_execution_mode(retargeted, "simulate")
        try:
            fit = fit_budget(retargeted, val_clips, target)
        except ConfigError as error:
            print(f"not re-targeted to {reference}: {error}")
            continue
        result = evaluate(retargeted, test, classes=classes, progress=False)
        label = RETARGETED + reference
        out[label] = {
            "target_mac_fraction": target,
            "offset": fit.offset,
            "val_mac_fraction": fit.mac_fraction,
            **summarise(result, dense_macs=dense_macs),
        }
        records[label] = result.records
        print(f"{label}: top-1 {result.top1:.4f} at {out[label]['mean_mac_fraction']:.3f} "
              f"({reference}: {runs[reference]['top1']:.4f} at {target:.3f})")  # fmt: skip
    return out, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-checkpoint", type=Path, default=DEFAULT_DENSE)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage; outputs get a _seedN suffix if not 0")
    parser.add_argument("--tag", default="", help="names this setting's outputs: dance_<tag>_moving_digits.json, ...")
    parser.add_argument(
        "--extra-static-frame-keep",
        type=float,
        action="append",
        default=[],
        metavar="F",
        help="also a static baseline at this fraction of the frames (repeatable), e.g. 0.25",
    )
    parser.add_argument(
        "--static-distill",
        action="store_true",
        help="fine-tune the static baselines with AAP's distillation from the dense model too",
    )
    parser.add_argument("--test-clips", type=int, default=None,
                        help="test clips (default 800; moving-digits generates more past its test split's size): "
                             "more clips, tighter paired tests")  # fmt: skip
    parser.add_argument("--train-clips", type=int, default=0, help="clips for AVA, AAP and the static fine-tune")
    parser.add_argument(
        "--retarget",
        action="store_true",
        help="also re-target the trained DANCE model (no training) to each static baseline's and curve run's MACs",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="e.g. aap.mac_penalty=8, ava.epochs=1, dynamic.channel_multiple=8",
    )
    args = parser.parse_args()
    if args.tag and not re.fullmatch(r"[A-Za-z0-9-]+", args.tag):
        raise SystemExit(f"--tag {args.tag!r}: use letters, digits and '-' only (it becomes part of file names)")
    if args.threads:
        torch.set_num_threads(args.threads)
    retain_freed_memory()  # steadier latencies: no page faults on every forward (docs/profiling.md)
    torch.manual_seed(args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cfg = settings(args.quick)
    if args.train_clips:
        cfg["num_train_clips"] = args.train_clips
    if args.test_clips is not None:
        if args.test_clips < 1:
            raise SystemExit(f"--test-clips {args.test_clips}: must be >= 1")
        cfg["num_test_clips"] = args.test_clips
    for keep in args.extra_static_frame_keep:
        if not 0.0 < keep < 1.0:
            raise SystemExit(f"--extra-static-frame-keep {keep}: must be in (0, 1)")
    cfg["extra_static_frame_keeps"] = tuple(args.extra_static_frame_keep)
    for override in args.set:
        cfg = with_override(cfg, override)
    cfg["ava"] = replace(cfg["ava"], seed=args.seed)
    cfg["aap"] = replace(cfg["aap"], seed=args.seed)
    timings: dict[str, float] = {}
    started_all = time.perf_counter()

    loaded = dense_model(args.dense_checkpoint)
    data, classes = loaded.data, loaded.classes
    prefix = "dance_" + ("quick_" if args.quick else "") + (f"{data.task}_" if data.task != "direction" else "")
    prefix += f"{args.tag}_" if args.tag else ""
    prefix += f"seed{args.seed}_" if args.seed else ""
    clip_shape = (data.num_frames, data.height, data.width)
    t = time.perf_counter()
    train = cached_split(data, "train", classes=classes, limit=cfg["num_train_clips"])
    val = cached_split(data, "val", classes=classes, limit=cfg["num_val_clips"])
    if data.is_synthetic and cfg["num_test_clips"] > data.num_test:
        data = replace(data, num_test=cfg["num_test_clips"])  # clips are generated per index: the split extends
    test = cached_split(data, "test", classes=classes, limit=cfg["num_test_clips"])
    timings["data_s"] = time.perf_counter() - t

    # dense reference
    dense = loaded.model.eval()
    reference = convert_model(copy.deepcopy(dense), clip_shape=clip_shape)
    dense_result = evaluate(dense, test, classes=classes, progress=False)
    records = {"dense": dense_result.records}  # per-clip test results of every model, for paired comparisons

    def dense_forward(clip: torch.Tensor) -> torch.Tensor:
        with fast_conv_backend():  # the oneDNN path compact execution uses (docs/design.md §2.6)
            return dense(clip)

    latency_forwards = {"dense": dense_forward}
    with torch.no_grad():
        reference(torch.zeros(1, 3, *clip_shape), decisions=reference.full_decisions(1))
    dense_macs = reference.dense_macs
    print(f"dense: top-1 {dense_result.top1:.4f}, {dense_macs / 1e9:.3f} GMACs/clip")

    # stage 1: AVA
    t = time.perf_counter()
    ava_model = convert_model(copy.deepcopy(dense), clip_shape=clip_shape)
    cv_before = measure_variability(ava_model, val)
    ava_history = train_ava(ava_model, train, cfg["ava"], log=print)
    cv_after = measure_variability(ava_model, val)
    timings["ava_s"] = time.perf_counter() - t
    ava_dense = copy.deepcopy(dense)
    ava_dense.load_state_dict(dense_state_dict(ava_model))
    ava_dense.eval()
    ava_top1 = evaluate(ava_dense, test, classes=classes, progress=False).top1
    plot_variability(cv_before, cv_after, RESULTS / f"{prefix}ava_variability.png")
    print(f"AVA: top-1 {ava_top1:.4f}")

    # stage 2: AAP with and without AVA, and the trade-off curve
    teachers: dict = {}
    partial = RESULTS / f"{prefix}moving_digits.partial.json"  # progress of an unfinished run
    aap = cfg["aap"]
    runs: dict[str, dict[str, Any]] = {}
    for label, backbone, target in [
        ("dance", ava_dense, aap.target_mac_fraction),
        ("dance_without_ava", dense, aap.target_mac_fraction),
    ] + [(f"dance_target_{x:g}", ava_dense, x) for x in cfg["curve_targets"]]:
        run_settings = replace(aap, target_mac_fraction=target)
        teacher = dense_teacher_logits(backbone, clip_shape, train, teachers)
        model, result, history, seconds = run_aap(
            backbone, clip_shape, train, run_settings, test, classes, dynamic=cfg["dynamic"], teacher=teacher
        )
        timings[f"{label}_s"] = seconds
        records[label] = result.records
        runs[label] = {"target_mac_fraction": target, **summarise(result, dense_macs=dense_macs), "history": history}
        partial.write_text(
            json.dumps({"dense_top1": dense_result.top1, "runs": runs, "timings_s": timings}, default=float)
        )
        print(f"{label}: top-1 {result.top1:.4f}, mean MAC fraction {runs[label]['mean_mac_fraction']:.3f}")
        if label == "dance":
            main_result, main_model = result, copy.deepcopy(model)  # before compact execution is set on it
            latency_forwards.update(dance_forwards(model, test))

    # static baselines at the mean MACs of DANCE runs, fine-tuned for the same number of epochs
    t = time.perf_counter()
    static_teacher = dense_teacher_logits(dense, clip_shape, train, teachers) if args.static_distill else None
    multiple = cfg["dynamic"].channel_multiple
    frame_kinds = {"static_frames": cfg["static_frame_keep"]}  # kind -> fraction of frames kept
    frame_kinds |= {f"static_frames_{keep:g}": keep for keep in cfg["extra_static_frame_keeps"]}
    kinds = [("static", 1.0, multiple)] + [(kind, keep, multiple) for kind, keep in frame_kinds.items()]
    for label in cfg["static_targets"]:
        for kind, frame_keep, channel_multiple in kinds + ([("static_unrounded", 1.0, 1)] if label == "dance" else []):
            name = f"{kind}_at_{label}"
            runs[name], records[name], latency_forwards[name] = run_static(
                dense,
                clip_shape,
                train,
                test,
                classes,
                runs[label]["mean_mac_fraction"],
                cfg,
                frame_keep_fraction=frame_keep,
                seed=args.seed,
                dense_macs=dense_macs,
                channel_multiple=channel_multiple,
                teacher=static_teacher,
            )
            static = runs[name]
            print(f"{kind} at {label}: top-1 {static['top1']:.4f} at MAC fraction {static['mean_mac_fraction']:.3f}")
    timings["static_baselines_s"] = time.perf_counter() - t
    if args.retarget:
        t = time.perf_counter()
        retargeted, retargeted_records = retarget_runs(main_model, runs, val, test, classes, dense_macs=dense_macs)
        runs |= retargeted
        records |= retargeted_records
        timings["retarget_s"] = time.perf_counter() - t

    # batch-1 latency of every model, interleaved
    latency = batch1_latency_ms(latency_forwards, test)
    by_controller = {
        controller: latency.pop(name)
        for controller, name in (("eager", "dance"), ("compiled", "dance_compiled_controller"))
        if name in latency
    }
    runs["dance"]["compact_latency_ms_batch1"] = min(by_controller.values())  # a deployment keeps the faster
    runs["dance"]["compact_latency_ms_batch1_by_controller"] = by_controller
    for name, ms in latency.items():
        if name != "dense":
            runs[name]["compact_latency_ms_batch1"] = ms
    print("batch-1 latency (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in latency.items()) + ", dance "
          + ", ".join(f"{v:.2f} ({k} controller)" for k, v in by_controller.items()))  # fmt: skip

    # figures
    fractions = np.array([r["mac_fraction"] for r in main_result.records])
    redundancy = np.array([r["redundancy"] for r in main_result.records])
    plot_adaptivity(
        redundancy,
        fractions,
        RESULTS / f"{prefix}adaptivity.png",
        rho=runs["dance"]["spearman_mac_fraction_vs_redundancy"],
    )
    dance_points = [
        (r["mean_mac_fraction"], r["top1"]) for k, r in runs.items() if k == "dance" or k.startswith("dance_target")
    ]
    plot_tradeoff(
        {
            "DANCE (AVA + AAP)": dance_points,
            "AAP without AVA": [(runs["dance_without_ava"]["mean_mac_fraction"], runs["dance_without_ava"]["top1"])],
            "DANCE re-targeted, no training": sorted(
                (r["mean_mac_fraction"], r["top1"]) for k, r in runs.items() if k.startswith(RETARGETED)
            ),
            "static magnitude channels": sorted(
                (r["mean_mac_fraction"], r["top1"]) for k, r in runs.items() if k.startswith("static_at_")
            ),
            "static channels, unrounded widths": [
                (r["mean_mac_fraction"], r["top1"]) for k, r in runs.items() if k.startswith("static_unrounded_at_")
            ],
            **{
                f"static: {keep:g} of frames + channels": sorted(
                    (r["mean_mac_fraction"], r["top1"]) for k, r in runs.items() if k.startswith(f"{kind}_at_")
                )
                for kind, keep in frame_kinds.items()
            },
        },
        RESULTS / f"{prefix}tradeoff.png",
        dense_top1=dense_result.top1,
    )
    timings["total_s"] = time.perf_counter() - started_all

    d, without_ava = runs["dance"], runs["dance_without_ava"]
    paired = paired_comparisons(records, cfg["static_targets"])
    for name, gap in paired.items():
        print(
            f"{name}: {gap['top1_diff_points']:+.2f} points, {gap['only_a_correct']} vs "
            f"{gap['only_b_correct']} clips only one gets right, McNemar p = {gap['mcnemar_p']:.3f}"
        )
    rounded_kinds = [kind for kind, _, _ in kinds]
    beats_static = {label: beats_static_baselines(runs, label, rounded_kinds) for label in cfg["static_targets"]}
    report = {
        "benchmark": "dance_moving_digits",
        "quick": args.quick,
        "seed": args.seed,
        "tag": args.tag,
        "machine": {
            **collect_env(),
            "note": "2 CPU cores shared with other jobs; timings are indicative",
        },
        "settings": {
            "model": loaded.checkpoint["model"],
            "dense_checkpoint": str(args.dense_checkpoint),
            "data": asdict(data),
            "clip_shape": list(clip_shape),
            "num_train_clips": len(train),
            "num_val_clips": len(val),
            "num_test_clips": len(test),
            "ava": asdict(cfg["ava"]),
            "aap": asdict(aap),
            "dynamic": asdict(cfg["dynamic"]),
            "curve_targets": list(cfg["curve_targets"]),
            "static_targets": list(cfg["static_targets"]),
            "static_lr": cfg["static_lr"],
            "static_distill": args.static_distill,
            "static_frame_keep": cfg["static_frame_keep"],
            "extra_static_frame_keeps": list(cfg["extra_static_frame_keeps"]),
            "retarget": args.retarget,
            "clip_storage": "float16 in memory (all methods see the same clips)",
        },
        "dense": {"top1": dense_result.top1, "macs_per_clip": dense_macs, "latency_ms_batch1": latency["dense"]},
        "ava": {
            "top1_after": ava_top1,
            "history": ava_history,
            "cv_mean_before": {k: float(v.mean()) for k, v in cv_before.items()},
            "cv_mean_after": {k: float(v.mean()) for k, v in cv_after.items()},
        },
        "runs": runs,
        "targets": {
            "top1_drop_points": 100 * (dense_result.top1 - d["top1"]),
            "top1_drop_at_most_1_point": 100 * (dense_result.top1 - d["top1"]) <= 1.0,
            "mac_reduction_at_least_60pct": d["mac_reduction"] >= 0.60,
            "spread_p90_minus_p10_at_least_15_points": d["mac_fraction_p90_minus_p10"] >= 0.15,
            "abs_spearman_at_least_0.5": abs(d["spearman_mac_fraction_vs_redundancy"]) >= 0.5,
            "dance_beats_static_baseline_at": beats_static,
            "dance_beats_static_baseline": all(beats_static.values()),
            # AVA helps if its run is no worse on either axis and better on one (MACs by > 1 point)
            "ava_helps": d["top1"] >= without_ava["top1"]
            and d["mean_mac_fraction"] <= without_ava["mean_mac_fraction"]
            and (d["top1"] > without_ava["top1"] or d["mean_mac_fraction"] < without_ava["mean_mac_fraction"] - 0.01),
        },
        "paired_comparisons": paired,
        "timings_s": timings,
        "figures": [f"{prefix}{name}.png" for name in ("ava_variability", "adaptivity", "tradeoff")],
        "per_clip_table": f"{prefix}clips.parquet",
    }
    clip_table(records).to_parquet(RESULTS / f"{prefix}clips.parquet", index=False)
    out = RESULTS / f"{prefix}moving_digits.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    partial.unlink(missing_ok=True)
    print(f"wrote {out} in {timings['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
