"""The DANCE comparison experiment: a dense model, AVA, AAP runs and the baselines they are judged against.

From a loaded dense checkpoint, on cached train / val / test clips: the dense reference; AVA
(:func:`~dance3d.dance.pipeline.ava_stage`); AAP (:func:`~dance3d.dance.pipeline.aap_stage`) on the
AVA model (``dance``), on the dense model (``dance_without_ava``) and at each curve target
(``dance_target_<x>``); static baselines at the mean MACs of the ``static_targets`` runs
(:func:`~dance3d.dance.compare.static_baseline`); optionally the ``dance`` model re-targeted to
every baseline's MACs; batch-1 latency of every model, interleaved; paired tests and the target
rules (:mod:`dance3d.dance.compare`). ``benchmarks/dance_moving_digits.py`` runs it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dance3d.benchmark_results import dumps_strict
from dance3d.dance.compare import (
    DEFAULT_FAMILIES,
    RETARGETED,
    StaticKind,
    StaticRun,
    dance_targets,
    paired_comparisons,
    retarget_runs,
    run_summary,
    static_baseline,
    static_kinds,
)
from dance3d.dance.data import ClipCache, cached_split
from dance3d.dance.latency import batch1_latency_ms, dance_forwards, dense_forward
from dance3d.dance.pipeline import PRESETS, DanceSettings, aap_stage, ava_stage, dense_teacher
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicModel, convert_model
from dance3d.evaluation import EvalResult, evaluate


@dataclass(frozen=True)
class ComparisonSettings:
    """The clips, the extra AAP runs and the baselines the DANCE runs are compared with."""

    train_clips: int = 960  # for AVA, AAP and the static fine-tunes
    val_clips: int = 200  # AVA's measurements, re-targeting fits
    test_clips: int = 800  # every comparison (moving-digits generates more past its test split's size)
    curve_targets: tuple[float, ...] = (0.2, 0.45)  # more AAP runs on the AVA model, one per MAC target
    static_targets: tuple[str, ...] = ("dance", "dance_target_0.2")  # the runs whose MACs static baselines match
    static_lr: float = 5e-4
    static_families: tuple[str, ...] = DEFAULT_FAMILIES  # see dance3d.dance.compare.static_kinds
    static_frame_keep: float = 0.5  # the frame-skipping static baseline keeps this fraction of the frames
    extra_static_frame_keeps: tuple[float, ...] = ()  # more frame-skipping baselines, counted the same way
    static_distill: bool = False  # fine-tune static baselines with AAP's distillation from the dense model too
    retarget: bool = False  # re-target the trained ``dance`` model to every baseline's and curve run's MACs
    latency_clips: int = 32
    batch8_latency: bool = False  # also time dense and DANCE (compact) at batch 8
    compile_controller: bool = True  # also time DANCE with its controller torch.compile'd (slow to compile)

    def __post_init__(self) -> None:
        static_kinds(frame_keep=0.5, extra_frame_keeps=(), channel_multiple=1, families=self.static_families)
        if min(self.train_clips, self.val_clips, self.test_clips, self.latency_clips) < 1:
            raise ValueError("train_clips, val_clips, test_clips and latency_clips must be >= 1")
        for keep in (self.static_frame_keep, *self.extra_static_frame_keeps):
            if not 0.0 < keep < 1.0:
                raise ValueError(f"static frame keep fractions must be in (0, 1), got {keep}")
        if not self.static_lr > 0:
            raise ValueError(f"static_lr must be > 0, got {self.static_lr}")
        known = {"dance", *(f"dance_target_{x:g}" for x in self.curve_targets)}
        if unknown := [t for t in self.static_targets if t not in known]:
            raise ValueError(f"static_targets {unknown} are not runs; runs: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class ExperimentConfig(DanceSettings):
    """:class:`~dance3d.dance.pipeline.DanceSettings` and what the runs are compared with."""

    comparison: ComparisonSettings = field(default_factory=ComparisonSettings)


EXPERIMENTS: dict[str, ExperimentConfig] = {
    "default": ExperimentConfig(),
    "untrimmed": ExperimentConfig(
        aap=replace(PRESETS["default"].aap, target_mac_fraction=0.35),
        comparison=ComparisonSettings(
            train_clips=1200,
            val_clips=400,
            test_clips=2400,
            curve_targets=(),
            static_targets=("dance",),
            static_families=("static", "input_stride2", "input_stride4", "input_stride2_channels"),
            static_distill=True,
            compile_controller=False,
            batch8_latency=True,
        ),
    ),
    "smoke": ExperimentConfig(
        ava=PRESETS["smoke"].ava,
        aap=PRESETS["smoke"].aap,
        comparison=ComparisonSettings(
            train_clips=48, val_clips=32, test_clips=64, curve_targets=(0.5,), static_targets=("dance",)
        ),
    ),
}
"""``default``: the moving-digits benchmark's reported setting; ``untrimmed``: the untrimmed-clip benchmark's
(``benchmarks/dance_untrimmed.py``); ``smoke``: ``--quick``, a few clips, one epoch per phase."""


ExtraBaseline = Callable[..., StaticRun]
"""``(mac_fraction, *, train, test, teacher, epochs, log) -> StaticRun``: a static model at ``mac_fraction`` of the
dense MACs, fine-tuned ``epochs`` on ``train`` (distilled from ``teacher`` when given), evaluated on ``test``."""


@dataclass
class Experiment:
    data: DataConfig  # the dense checkpoint's (the test split extended to ``test_clips``)
    clip_counts: dict[str, int]
    dense: dict[str, Any]
    ava: dict[str, Any]
    variability: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # per-unit CV before and after AVA
    runs: dict[str, dict[str, Any]]
    records: dict[str, list[dict[str, Any]]]  # per-clip test results of every model
    kinds: list[StaticKind]
    paired: dict[str, dict[str, float]]
    targets: dict[str, bool]
    timings_s: dict[str, float]
    dance_model: DynamicModel  # the trained ``dance`` run, in simulate mode


def comparison_splits(
    data: DataConfig, classes: tuple[str, ...], comparison: ComparisonSettings
) -> tuple[DataConfig, ClipCache, ClipCache, ClipCache]:
    """The comparison's data (the test split extended to ``test_clips``) and its train, val and test clips."""
    train = cached_split(data, "train", classes=classes, limit=comparison.train_clips)
    val = cached_split(data, "val", classes=classes, limit=comparison.val_clips)
    if data.is_synthetic and comparison.test_clips > data.num_test:
        data = replace(data, num_test=comparison.test_clips)  # clips are generated per index: the split extends
    return data, train, val, cached_split(data, "test", classes=classes, limit=comparison.test_clips)


@dataclass
class BaselineRuns:
    """The dense model and every static family at one MAC fraction, before any DANCE run."""

    data: DataConfig
    clip_counts: dict[str, int]
    dense: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    records: dict[str, list[dict[str, Any]]]
    timings_s: dict[str, float]


def run_baselines(
    dense: torch.nn.Module,
    data: DataConfig,
    classes: tuple[str, ...],
    config: ExperimentConfig,
    *,
    mac_fraction: float,
    extra_baselines: dict[str, ExtraBaseline] | None = None,
    log=print,
) -> BaselineRuns:
    """Dense and every static family at ``mac_fraction`` (named ``<family>_at_target``), on the clips
    :func:`run_experiment` uses, with the same fine-tuning: the baselines an experiment fixes before DANCE runs."""
    started = time.perf_counter()
    shape = (data.num_frames, data.height, data.width)
    data, train, _, test = comparison_splits(data, classes, config.comparison)
    dense = dense.eval()
    dense_result, dense_macs = _dense_reference(dense, test, shape=shape, classes=classes)
    teacher = dense_teacher(dense, train, shape=shape) if config.comparison.static_distill else None
    statics = static_runs(
        dense, train, test, mac_fraction, config, label="target", kinds=experiment_kinds(config), shape=shape,
        classes=classes, dense_macs=dense_macs, teacher=teacher, extra_baselines=extra_baselines, log=log,
    )  # fmt: skip
    records = {"dense": dense_result.records} | {name: static.records for name, static in statics.items()}
    return BaselineRuns(
        data=data,
        clip_counts={"train": len(train), "test": len(test)},
        dense={"top1": dense_result.top1, "macs_per_clip": dense_macs},
        runs={name: {"target_mac_fraction": mac_fraction, **static.summary} for name, static in statics.items()},
        records=records,
        timings_s={"total_s": time.perf_counter() - started},
    )


def dense_mac_count(dense: torch.nn.Module, shape: tuple[int, int, int]) -> int:
    """MACs per clip of ``dense`` on clips of ``shape`` (T, H, W), as the dynamic models count them."""
    reference = convert_model(copy.deepcopy(dense), clip_shape=shape)
    with torch.no_grad():
        reference(torch.zeros(1, 3, *shape), decisions=reference.full_decisions(1))
    return reference.dense_macs


def _dense_reference(
    dense: torch.nn.Module, test: ClipCache, *, shape: tuple[int, int, int], classes: tuple[str, ...]
) -> tuple[EvalResult, int]:
    """The dense model's test results and its MACs per clip."""
    return evaluate(dense, test, classes=classes, progress=False), dense_mac_count(dense, shape)


def experiment_kinds(config: ExperimentConfig) -> list[StaticKind]:
    """The static baseline families of ``config`` (:func:`~dance3d.dance.compare.static_kinds`)."""
    comparison = config.comparison
    return static_kinds(
        frame_keep=comparison.static_frame_keep,
        extra_frame_keeps=comparison.extra_static_frame_keeps,
        channel_multiple=config.dynamic.channel_multiple,
        families=comparison.static_families,
    )


def static_runs(
    dense: torch.nn.Module,
    train: ClipCache,
    test: ClipCache,
    mac_fraction: float,
    config: ExperimentConfig,
    *,
    label: str,
    kinds: list[StaticKind],
    shape: tuple[int, int, int],
    classes: tuple[str, ...],
    dense_macs: int,
    teacher: torch.Tensor | None,
    extra_baselines: dict[str, ExtraBaseline] | None,
    log=print,
) -> dict[str, StaticRun]:
    """Every static family (``kinds``, then ``extra_baselines``) at ``mac_fraction``, named ``<family>_at_<label>``,
    each fine-tuned as long as AAP trains."""
    aap, out = config.aap, {}
    for kind in kinds:
        out[f"{kind.name}_at_{label}"] = static_baseline(
            dense, train, test, mac_fraction, kind, shape=shape, classes=classes, aap=aap,
            lr=config.comparison.static_lr, dense_macs=dense_macs, teacher=teacher, log=log,
        )  # fmt: skip
    for family, baseline in (extra_baselines or {}).items():
        out[f"{family}_at_{label}"] = baseline(
            mac_fraction, train=train, test=test, teacher=teacher, epochs=aap.epochs + aap.joint_epochs, log=log
        )
    for name, static in out.items():
        log(f"{name}: top-1 {static.summary['top1']:.4f} at MAC fraction {static.summary['mean_mac_fraction']:.3f}")
    return out


def run_experiment(
    dense: torch.nn.Module,
    data: DataConfig,
    classes: tuple[str, ...],
    config: ExperimentConfig,
    *,
    log=print,
    progress_path: Path | None = None,
    extra_baselines: dict[str, ExtraBaseline] | None = None,
) -> Experiment:
    """Every run of the comparison (module docstring); ``progress_path`` gets each finished AAP run as it lands.

    ``extra_baselines``: more static families by name (e.g. an MDP-pruned model), each called like
    :data:`ExtraBaseline` at every static target's MACs and judged like the built-in families.

    Batches follow ``config.ava.seed`` / ``config.aap.seed`` and each AAP run seeds its controller; the global
    torch RNG, which draws nothing the results depend on, is the caller's (the benchmark seeds it first).
    """
    comparison, aap = config.comparison, config.aap
    timings: dict[str, float] = {}
    started_all = time.perf_counter()
    shape = (data.num_frames, data.height, data.width)
    t = time.perf_counter()
    data, train, val, test = comparison_splits(data, classes, comparison)
    timings["data_s"] = time.perf_counter() - t

    dense = dense.eval()
    dense_result, dense_macs = _dense_reference(dense, test, shape=shape, classes=classes)
    records = {"dense": dense_result.records}
    forwards = {"dense": dense_forward(dense)}
    log(f"dense: top-1 {dense_result.top1:.4f}, {dense_macs / 1e9:.3f} GMACs/clip")

    t = time.perf_counter()
    ava_dense, ava_result, _ = ava_stage(dense, train, val, config.ava, shape=shape, log=log)
    timings["ava_s"] = time.perf_counter() - t
    ava_top1 = evaluate(ava_dense, test, classes=classes, progress=False).top1
    log(f"AVA: top-1 {ava_top1:.4f}")

    teachers: dict[int, torch.Tensor] = {}  # per backbone, computed once

    def teacher(backbone: torch.nn.Module) -> torch.Tensor:
        if id(backbone) not in teachers:
            teachers[id(backbone)] = dense_teacher(backbone, train, shape=shape)
        return teachers[id(backbone)]

    runs: dict[str, dict[str, Any]] = {}
    plan = [("dance", ava_dense, aap.target_mac_fraction), ("dance_without_ava", dense, aap.target_mac_fraction)]
    plan += [(f"dance_target_{x:g}", ava_dense, x) for x in comparison.curve_targets]
    for label, backbone, target in plan:
        outcome = aap_stage(
            backbone,
            train,
            replace(aap, target_mac_fraction=target),
            shape=shape,
            dynamic=config.dynamic,
            teacher=teacher(backbone),
            log=log,
        )
        result = evaluate(outcome.model, test, classes=classes, progress=False)
        timings[f"{label}_s"] = outcome.train_s
        records[label] = result.records
        summary = run_summary(result, dense_macs=dense_macs)
        runs[label] = {"target_mac_fraction": target, **summary, "history": outcome.history}
        if progress_path is not None:
            progress = {"dense_top1": dense_result.top1, "runs": runs, "timings_s": timings}
            progress_path.write_text(dumps_strict(progress))
        log(f"{label}: top-1 {result.top1:.4f}, mean MAC fraction {runs[label]['mean_mac_fraction']:.3f}")
        if label == "dance":
            dance_model = copy.deepcopy(outcome.model)  # before compact execution is set on it
            forwards.update(
                dance_forwards(outcome.model, test, compile_controller=comparison.compile_controller, log=log)
            )

    t = time.perf_counter()
    static_teacher = teacher(dense) if comparison.static_distill else None
    kinds = experiment_kinds(config)
    for label in comparison.static_targets:
        statics = static_runs(
            dense, train, test, runs[label]["mean_mac_fraction"], config, label=label, shape=shape, classes=classes,
            dense_macs=dense_macs, teacher=static_teacher, extra_baselines=extra_baselines, log=log,
            kinds=[k for k in kinds if k.rounded or label == "dance"],
        )  # fmt: skip
        for name, static in statics.items():
            runs[name], records[name], forwards[name] = static.summary, static.records, static.forward
    timings["static_baselines_s"] = time.perf_counter() - t
    if comparison.retarget:
        t = time.perf_counter()
        retargeted, retargeted_records = retarget_runs(
            dance_model, runs, val, test, classes=classes, dense_macs=dense_macs, log=log
        )
        runs |= retargeted
        records |= retargeted_records
        timings["retarget_s"] = time.perf_counter() - t

    latency = batch1_latency_ms(forwards, test, count=comparison.latency_clips)
    by_controller = {
        controller: latency.pop(name)
        for controller, name in (("eager", "dance"), ("compiled", "dance_compiled_controller"))
        if name in latency
    }
    dense_summary = {"top1": dense_result.top1, "macs_per_clip": dense_macs, "latency_ms_batch1": latency["dense"]}
    if comparison.batch8_latency:
        batch8 = {name: forwards[name] for name in ("dense", "dance")}
        latency8 = batch1_latency_ms(batch8, test, count=max(1, comparison.latency_clips // 8), batch_size=8)
        dense_summary["latency_ms_batch8"] = latency8["dense"]
        runs["dance"]["compact_latency_ms_batch8"] = latency8["dance"]
        log(f"batch-8 latency (ms): dense {latency8['dense']:.2f}, dance {latency8['dance']:.2f}")
    runs["dance"]["compact_latency_ms_batch1"] = min(by_controller.values())  # a deployment keeps the faster
    runs["dance"]["compact_latency_ms_batch1_by_controller"] = by_controller
    for name, ms in latency.items():
        if name != "dense":
            runs[name]["compact_latency_ms_batch1"] = ms
    log("batch-1 latency (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in latency.items()) + ", dance "
        + ", ".join(f"{v:.2f} ({k} controller)" for k, v in by_controller.items()))  # fmt: skip

    rounded = [kind.name for kind in kinds if kind.rounded]
    timings["total_s"] = time.perf_counter() - started_all
    return Experiment(
        data=data,
        clip_counts={"train": len(train), "val": len(val), "test": len(test)},
        dense=dense_summary,
        ava={
            "top1_after": ava_top1,
            "val_top1_before": ava_result.top1_before,
            "val_top1_after": ava_result.top1_after,
            "history": ava_result.history,
            "cv_mean_before": {k: float(v.mean()) for k, v in ava_result.variability_before.items()},
            "cv_mean_after": {k: float(v.mean()) for k, v in ava_result.variability_after.items()},
        },
        variability=(ava_result.variability_before, ava_result.variability_after),
        runs=runs,
        records=records,
        kinds=kinds,
        paired=paired_comparisons(records, comparison.static_targets),
        targets=dance_targets(
            runs, dense_top1=dense_result.top1, static_targets=comparison.static_targets, kinds=rounded
        ),
        timings_s=timings,
        dance_model=dance_model,
    )


def tradeoff_series(runs: dict[str, dict[str, Any]], kinds: list[StaticKind]) -> dict[str, list[tuple[float, float]]]:
    """(mean MAC fraction, top-1) points of each family of runs, for :func:`~dance3d.dance.plots.plot_tradeoff`."""

    def points(keep: Callable[[str], bool]) -> list[tuple[float, float]]:
        return sorted((r["mean_mac_fraction"], r["top1"]) for name, r in runs.items() if keep(name))

    def prefixed(prefix: str) -> Callable[[str], bool]:
        return lambda name: name.startswith(prefix)

    return {
        "DANCE (AVA + AAP)": points(lambda name: name == "dance" or name.startswith("dance_target_")),
        "AAP without AVA": points(lambda name: name == "dance_without_ava"),
        "DANCE re-targeted, no training": points(prefixed(RETARGETED)),
        "static magnitude channels": points(prefixed("static_at_")),
        "static channels, unrounded widths": points(prefixed("static_unrounded_at_")),
        **{
            f"static: {kind.frame_keep_fraction:g} of frames + channels": points(prefixed(f"{kind.name}_at_"))
            for kind in kinds
            if kind.frame_keep_fraction < 1.0
        },
        **{
            f"static: 1/{kind.input_frame_stride} of the input frames" + " + channels" * kind.prune_channels: points(
                prefixed(f"{kind.name}_at_")
            )
            for kind in kinds
            if kind.input_frame_stride > 1
        },
    }
