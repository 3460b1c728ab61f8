"""How DANCE runs are judged: static baselines at matched MACs, paired McNemar tests, target rules.

Every model is evaluated on the same test clips, so two models are compared clip by clip
(:func:`paired_comparisons`, McNemar's exact test on the clips only one of them gets right). A
DANCE run beats the static baselines when it is more accurate than every rounded-width baseline
that spends at least about its MACs (:func:`beats_static_baselines`, within :data:`MAC_MATCH`);
:func:`dance_targets` are the benchmark's pass/fail rules.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dance3d.dance.aap import AapSettings
from dance3d.dance.data import ClipCache, every_nth_frame
from dance3d.dance.latency import compact_forward
from dance3d.dance.static_baseline import (
    StaticPrunedModel,
    finetune_static,
    keep_fraction_for,
    magnitude_decisions,
    static_mac_fraction,
)
from dance3d.data.moving_digits import CLIP_FACTORS, EVENT_FACTORS
from dance3d.dynamic import DynamicModel, convert_model, set_execution_mode
from dance3d.dynamic.budget import fit_budget
from dance3d.dynamic.gate_keys import distinct_keep_rates
from dance3d.errors import ConfigError
from dance3d.evaluation import EvalResult, evaluate
from dance3d.reporting import paired_accuracy, redundancy_spearman

MAC_MATCH = 0.02
"""A static baseline counts against a DANCE run when its mean MAC fraction is at most this far below the run's."""

RETARGETED = "dance_retargeted_to_"
"""Name prefix of the trained DANCE model re-targeted (no training) to another model's mean MAC fraction."""


def run_summary(result: EvalResult, *, dense_macs: int) -> dict[str, Any]:
    """Top-1, the spread of the per-clip MAC fraction, how it follows the clip's redundancy, and keep rates."""
    records = result.records
    fractions = np.array([r.get("mac_fraction", 1.0) for r in records])
    redundancy = np.array([r["redundancy"] for r in records])
    names = (*CLIP_FACTORS, *EVENT_FACTORS)
    factors = {factor: np.array([r[factor] for r in records]) for factor in names if factor in records[0]}
    by_factor = {  # a factor constant over the clips (no moving clutter, say) has no correlation
        factor: redundancy_spearman(values, fractions) for factor, values in factors.items() if np.ptp(values) > 0
    }
    keys = [k for k in result.clip_stat_summary if "." not in k and k not in ("macs", "mac_fraction")]
    p10, p50, p90 = (float(np.percentile(fractions, q)) for q in (10, 50, 90))
    return {
        "top1": result.top1,
        "mean_mac_fraction": float(fractions.mean()),
        "mac_reduction": float(1 - fractions.mean()),
        "mac_fraction_p10": p10,
        "mac_fraction_p50": p50,
        "mac_fraction_p90": p90,
        "mac_fraction_p90_minus_p10": p90 - p10,
        "spearman_mac_fraction_vs_redundancy": redundancy_spearman(redundancy, fractions),
        "spearman_mac_fraction_vs_clip_factor": by_factor,  # which parts of the clip the budget follows
        "mean_macs": float(fractions.mean() * dense_macs),
        "keep_rates": {k: result.clip_stat_summary[k]["mean"] for k in keys},
        "distinct_keep_rates_per_gate": distinct_keep_rates(records),  # 1 everywhere: that axis never adapts
    }


@dataclass(frozen=True)
class StaticKind:
    """One family of static baselines: the fraction of frames every clip's gated blocks keep, channel widths
    rounded to ``channel_multiple``; ``rounded``: it counts in :func:`beats_static_baselines`.

    ``input_frame_stride`` > 1: the model sees every n-th input frame only (a lower input frame rate,
    stem included); with ``prune_channels`` False every channel is kept, so the family costs what
    the frame rate costs (it cannot be matched to another model's MACs).
    """

    name: str
    frame_keep_fraction: float
    channel_multiple: int
    rounded: bool = True
    input_frame_stride: int = 1
    prune_channels: bool = True


DEFAULT_FAMILIES = ("static", "static_frames", "static_unrounded")
_INPUT_RATE = re.compile(r"input_stride(\d+)(_channels)?")


def static_kinds(
    *,
    frame_keep: float,
    extra_frame_keeps: tuple[float, ...],
    channel_multiple: int,
    families: tuple[str, ...] = DEFAULT_FAMILIES,
) -> list[StaticKind]:
    """The static baseline families named in ``families``, then one per extra fraction of the frames:

    ``static`` (magnitude channels, every frame), ``static_frames`` (``frame_keep`` of the frames in
    the gated blocks, plus channels), ``static_unrounded`` (channels at unrounded widths: a
    reference outside the rule), ``input_stride<n>`` (every n-th input frame, every channel) and
    ``input_stride<n>_channels`` (every n-th input frame, plus channels).
    """
    kinds = []
    for name in families:
        if name == "static":
            kinds.append(StaticKind(name, 1.0, channel_multiple))
        elif name == "static_frames":
            kinds.append(StaticKind(name, frame_keep, channel_multiple))
        elif name == "static_unrounded":
            kinds.append(StaticKind(name, 1.0, 1, rounded=False))
        elif match := _INPUT_RATE.fullmatch(name):
            stride, channels = int(match[1]), bool(match[2])
            if stride < 2:
                raise ConfigError(f"static family {name!r}: the input frame stride must be >= 2")
            kinds.append(StaticKind(name, 1.0, channel_multiple, input_frame_stride=stride, prune_channels=channels))
        else:
            raise ConfigError(
                f"unknown static family {name!r}; known: static, static_frames, static_unrounded, input_stride<n>, "
                "input_stride<n>_channels"
            )
    kinds += [StaticKind(f"static_frames_{keep:g}", keep, channel_multiple) for keep in extra_frame_keeps]
    return kinds


@dataclass
class StaticRun:
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    forward: Callable[[torch.Tensor], Any]  # batch-1 compact execution, for latency
    model: torch.nn.Module


class EveryNthFrame(torch.nn.Module):
    """``model`` fed every ``stride``-th input frame; per-clip MAC fractions rescaled to the full-rate dense
    model's MACs (``mac_scale``: the model's own dense MACs over those)."""

    def __init__(self, model: torch.nn.Module, stride: int, mac_scale: float) -> None:
        super().__init__()
        self.model, self.stride, self.mac_scale = model, stride, mac_scale

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(clips[:, :, :: self.stride])

    def clip_stats(self) -> list[dict[str, float]]:
        return [
            {k: v * self.mac_scale if k.endswith("mac_fraction") else v for k, v in row.items()}
            for row in self.model.clip_stats()
        ]


class FixedCostModel(torch.nn.Module):
    """A static ``model`` whose every clip costs ``macs`` (counted once), so :func:`~dance3d.evaluation.evaluate`
    records the same MAC fields for it as for dynamic models."""

    def __init__(self, model: torch.nn.Module, *, macs: float, dense_macs: int) -> None:
        super().__init__()
        self.model, self.macs, self.dense_macs = model, macs, dense_macs
        self._batch = 0

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self._batch = len(clips)
        return self.model(clips)

    def clip_stats(self) -> list[dict[str, float]]:
        return [{"macs": self.macs, "mac_fraction": self.macs / self.dense_macs}] * self._batch


def static_baseline(
    dense: torch.nn.Module,
    train: ClipCache,
    test: ClipCache,
    mac_fraction: float,
    kind: StaticKind,
    *,
    shape: tuple[int, int, int],
    classes: tuple[str, ...],
    aap: AapSettings,
    lr: float,
    dense_macs: int,
    teacher: torch.Tensor | None = None,
    log=print,
) -> StaticRun:
    """Magnitude pruning of a copy of ``dense`` at ``mac_fraction`` (the narrowest widths of ``kind`` that reach it
    within :data:`MAC_MATCH`), fine-tuned as long as AAP trains (both phases, AAP's batch size and seed; with
    ``teacher``, the dense logits, distilled as AAP is), evaluated on ``test``."""
    stride = kind.input_frame_stride
    if shape[0] % stride:
        raise ConfigError(f"static family {kind.name}: {shape[0]} frames are not a multiple of the stride {stride}")
    shape = (shape[0] // stride, *shape[1:])
    train = every_nth_frame(train, stride)
    model = convert_model(copy.deepcopy(dense), clip_shape=shape)
    widths = {"frame_keep_fraction": kind.frame_keep_fraction, "channel_multiple": kind.channel_multiple}
    keep = 1.0
    if kind.prune_channels:
        static_mac_fraction(model, model.full_decisions(1))  # sets the model's own dense MACs
        scale = model.dense_macs / dense_macs
        keep = keep_fraction_for(model, min(1.0, mac_fraction / scale), slack=MAC_MATCH / scale, **widths)
    decisions = magnitude_decisions(model, keep, **widths)
    history = finetune_static(
        model,
        decisions,
        train,
        seed=aap.seed,
        epochs=aap.epochs + aap.joint_epochs,
        lr=lr,
        batch_size=aap.batch_size,
        teacher=teacher,
        distill_weight=aap.distill_weight,
        distill_temperature=aap.distill_temperature,
        progress=False,
        log=log,
    )
    pruned: torch.nn.Module = StaticPrunedModel(model, decisions)
    if stride > 1:
        pruned = EveryNthFrame(pruned, stride, model.dense_macs / dense_macs)
    result = evaluate(pruned, test, classes=classes, progress=False)
    summary = {
        "channel_keep_fraction": keep,
        "channel_multiple": kind.channel_multiple,
        "input_frame_stride": stride,
        "kept_channels_per_block": [int(d.channels.sum()) for d in decisions],
        **run_summary(result, dense_macs=dense_macs),
        "history": history,
    }
    forward = compact_forward(model, decisions)
    if stride > 1:
        forward = _every_nth(forward, stride)
    return StaticRun(summary, result.records, forward, pruned)


def _every_nth(forward: Callable[[torch.Tensor], Any], stride: int) -> Callable[[torch.Tensor], Any]:
    return lambda clip: forward(clip[:, :, ::stride])


def retarget_runs(
    model: DynamicModel,
    runs: dict[str, dict[str, Any]],
    val: ClipCache,
    test: ClipCache,
    *,
    classes: tuple[str, ...],
    dense_macs: int,
    log=print,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The trained DANCE ``model`` re-targeted without training (one logit offset fitted on ``val``) to the mean
    MAC fraction of every static baseline and curve-target run, evaluated on ``test``: summaries and records."""
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
            log(f"not re-targeted to {reference}: {error}")
            continue
        result = evaluate(retargeted, test, classes=classes, progress=False)
        label = RETARGETED + reference
        out[label] = {
            "target_mac_fraction": target,
            "offset": fit.offset,
            "val_mac_fraction": fit.mac_fraction,
            **run_summary(result, dense_macs=dense_macs),
        }
        records[label] = result.records
        log(f"{label}: top-1 {result.top1:.4f} at {out[label]['mean_mac_fraction']:.3f} "
            f"({reference}: {runs[reference]['top1']:.4f} at {target:.3f})")  # fmt: skip
    return out, records


def paired_comparisons(
    records: dict[str, list[dict[str, Any]]], static_targets: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per-clip paired tests (:func:`~dance3d.reporting.paired_accuracy`, "a" = the DANCE run) of ``dance`` against
    the dense model and the run without AVA, of each of ``static_targets`` against its static baselines
    (``<kind>_at_<target>``), and of each re-targeted model against the model whose MACs it was re-targeted to;
    pairs with a model missing from ``records`` are left out."""
    pairs = [("dance", "dense"), ("dance", "dance_without_ava")]
    statics = [name for name in records if not name.startswith(RETARGETED)]
    pairs += [(label, name) for label in static_targets for name in statics if name.endswith(f"_at_{label}")]
    pairs += [(name, name.removeprefix(RETARGETED)) for name in records if name.startswith(RETARGETED)]
    return {f"{a}_vs_{b}": paired_accuracy(records[a], records[b]) for a, b in pairs if a in records and b in records}


def beats_static_baselines(runs: dict[str, dict[str, Any]], label: str, kinds: list[str]) -> bool:
    """DANCE run ``label`` more accurate than every static baseline ``<kind>_at_<label>`` of ``kinds`` that spends at
    least about its MACs (:data:`MAC_MATCH`).

    A baseline that cannot reach them (half the frames with every channel cost less) is left out;
    one that spends more (the narrowest rounded widths may cost more) counts. False when none is left.
    """
    dance = runs[label]
    baselines = [runs[f"{kind}_at_{label}"] for kind in kinds]
    matched = [b["top1"] for b in baselines if b["mean_mac_fraction"] >= dance["mean_mac_fraction"] - MAC_MATCH]
    return bool(matched) and dance["top1"] > max(matched)


def ava_helps(with_ava: dict[str, Any], without_ava: dict[str, Any]) -> bool:
    """AVA helps if its run is no worse on either axis and better on one (fewer MACs by more than 1 point)."""
    top1, top1_without = with_ava["top1"], without_ava["top1"]
    macs, macs_without = with_ava["mean_mac_fraction"], without_ava["mean_mac_fraction"]
    return top1 >= top1_without and macs <= macs_without and (top1 > top1_without or macs < macs_without - 0.01)


def dance_targets(
    runs: dict[str, dict[str, Any]], *, dense_top1: float, static_targets: tuple[str, ...], kinds: list[str]
) -> dict[str, bool]:
    """The benchmark's pass/fail rules for run ``dance`` (and, for the static rule, each of ``static_targets``)."""
    dance = runs["dance"]
    beats = {label: beats_static_baselines(runs, label, kinds) for label in static_targets}
    return {
        "top1_drop_at_most_1_point": 100 * (dense_top1 - dance["top1"]) <= 1.0,
        "mac_reduction_at_least_60pct": dance["mac_reduction"] >= 0.60,
        "spread_p90_minus_p10_at_least_15_points": dance["mac_fraction_p90_minus_p10"] >= 0.15,
        "abs_spearman_at_least_0.5": abs(dance["spearman_mac_fraction_vs_redundancy"]) >= 0.5,
        **{f"dance_beats_static_baseline_at_{label}": value for label, value in beats.items()},
        "dance_beats_static_baseline": all(beats.values()),
        "ava_helps": ava_helps(dance, runs["dance_without_ava"]),
    }
