"""Re-target a trained dynamic model's budget without training: one logit offset on every knob.

A larger offset keeps at least as many units in every gate, so the mean MAC fraction over a set of
clips is a non-decreasing step function of the offset. :func:`fit_budget` bisects for the largest
offset whose mean MAC fraction (controller included) on the given clips is at most the target: a
budget is a ceiling. Fit on validation clips; the same offset then holds on unseen clips only as
far as they resemble them (the report of ``dance3d budget`` and ``eval`` on test clips show it).

Any mean per-clip cost that cannot fall as the offset grows can be capped the same way
(:func:`fit_cost` with a :class:`BudgetCost`), e.g. the latency a measured device cost table
predicts (``dance3d budget --target-latency-ms``, :mod:`dance3d.dance.device_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import load_model
from dance3d.data.registry import build_dataset
from dance3d.dynamic.checkpoint import applied_knobs, save_with_knobs
from dance3d.dynamic.knobs import apply_knobs, knob_space
from dance3d.dynamic.model import DynamicModel
from dance3d.errors import ConfigError


@dataclass(frozen=True)
class BudgetFit:
    """The fitted offset, the knob values it gives and the mean MAC fraction they reach on the fitting clips."""

    target_mac_fraction: float
    offset: float  # added to each shifted knob's value before the fit
    knobs: dict[str, float]
    mac_fraction: float
    num_clips: int
    evaluations: int  # passes over the clips the bisection made


ClipCost = Callable[[DynamicModel, torch.Tensor], float]
"""Mean per-clip cost of a model (as it is set now) over clips; non-decreasing in the knob offset."""


@dataclass(frozen=True)
class BudgetCost:
    """What a budget caps: a mean per-clip cost, its name for reports (``mac_fraction``, ``latency_ms`` ...) and
    how it is measured (default: the MAC fraction)."""

    name: str = "mac_fraction"
    measure: ClipCost | None = None  # None: mean_mac_fraction
    check: Callable[[DynamicModel], None] | None = None  # refuses a model the measure does not fit (clear error)

    def mean(self, model: DynamicModel, clips: torch.Tensor, *, batch_size: int) -> float:
        if self.measure is None:
            return mean_mac_fraction(model, clips, batch_size=batch_size)
        return self.measure(model, clips)


MAC_FRACTION = BudgetCost()


@dataclass(frozen=True)
class CostFit:
    """:class:`BudgetFit` for any :class:`BudgetCost`: the target, the offset, the knobs and the cost reached."""

    cost: str
    target: float
    offset: float
    knobs: dict[str, float]
    value: float
    num_clips: int
    evaluations: int


@torch.no_grad()
def mean_mac_fraction(model: torch.nn.Module, clips: torch.Tensor, *, batch_size: int = 32) -> float:
    """Mean per-clip MAC fraction of ``model`` (as it is set now) over ``clips`` (N, C, T, H, W; a co-pruned
    forecaster's inputs (N, t_in, C, H, W)): any model that records ``last_mac_fraction`` per sample."""
    total = 0.0
    for start in range(0, len(clips), batch_size):
        model(clips[start : start + batch_size])
        total += float(model.last_mac_fraction.sum())
    return total / len(clips)


def fit_budget(
    model: DynamicModel,
    clips: torch.Tensor,
    target_mac_fraction: float,
    *,
    knobs: tuple[str, ...] = (),
    span: float = 32.0,
    tolerance: float = 1e-3,
    batch_size: int = 32,
) -> BudgetFit:
    """Shift ``knobs`` (default: all) of ``model`` by the largest offset in [-span, span] whose mean MAC
    fraction on ``clips`` is at most ``target_mac_fraction``; leaves the model set to it."""
    if not 0.0 < target_mac_fraction <= 1.0:
        raise ConfigError(f"the target MAC fraction must be in (0, 1], got {target_mac_fraction}")
    fit = fit_cost(
        model, clips, target_mac_fraction, MAC_FRACTION, knobs=knobs, span=span, tolerance=tolerance,
        batch_size=batch_size,
    )  # fmt: skip
    return BudgetFit(
        target_mac_fraction, fit.offset, fit.knobs, fit.value, num_clips=fit.num_clips, evaluations=fit.evaluations
    )


def fit_cost(
    model: DynamicModel,
    clips: torch.Tensor,
    target: float,
    cost: BudgetCost,
    *,
    knobs: tuple[str, ...] = (),
    span: float = 32.0,
    tolerance: float = 1e-3,
    batch_size: int = 32,
) -> CostFit:
    """Shift ``knobs`` (default: all) of ``model`` by the largest offset in [-span, span] whose mean ``cost`` on
    ``clips`` is at most ``target``; leaves the model set to it."""
    if not target > 0:
        raise ConfigError(f"the target {cost.name} must be > 0, got {target}")
    if len(clips) == 0:
        raise ConfigError("fitting a budget needs at least one clip")
    names = [k.name for k in knob_space(model)]
    if not names:
        raise ConfigError("this model has no knobs (every gate has a single level): its budget cannot move")
    base = applied_knobs(model)
    evaluations = 0

    def shift(offset: float) -> None:  # apply_knobs rejects names the model does not have
        apply_knobs(model, {**base, **{name: base.get(name, 0.0) + offset for name in knobs or names}})

    def set_offset(offset: float) -> float:
        nonlocal evaluations
        shift(offset)
        evaluations += 1
        return cost.mean(model, clips, batch_size=batch_size)

    model.eval()
    best, best_value = largest_offset_within(set_offset, target, span=span, tolerance=tolerance)
    if best is None:
        apply_knobs(model, base)
        which = ", ".join(knobs) if knobs else "its knobs"
        raise ConfigError(
            f"the target {cost.name} {target:g} is below what this model reaches by shifting {which}: "
            f"{best_value:.4f} with every shifted gate at its lowest level"
        )
    shift(best)
    return CostFit(cost.name, target, best, applied_knobs(model), best_value, len(clips), evaluations)


def largest_offset_within(
    cost_at: Callable[[float], float], target: float, *, span: float, tolerance: float
) -> tuple[float | None, float]:
    """Bisect [-span, span] for the largest offset whose ``cost_at(offset)`` is at most ``target`` (a cost that
    does not fall as the offset grows): (that offset, its cost), or (None, the cost at -span) when even that is
    above the target. ``cost_at`` sets the model to the offset it measures; the caller sets the answer."""
    low, high = -span, span
    lowest = cost_at(low)
    if lowest > target:
        return None, lowest
    best, best_value = low, lowest
    if (highest := cost_at(high)) <= target:
        return high, highest
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        value = cost_at(middle)
        if value <= target:
            low, best, best_value = middle, middle, value
        else:
            high = middle
    return best, best_value


@dataclass(frozen=True)
class Retargeted:
    """A checkpoint written by :func:`retarget_checkpoint`: where, the fit, and the cost before it."""

    path: Path
    fit: CostFit
    before: float  # the mean cost on the fitting clips before the fit
    record: dict[str, Any]  # what the checkpoint stores under ``budget``


def retarget_checkpoint(
    source: str | Path,
    out: str | Path,
    target: float,
    *,
    cost: BudgetCost = MAC_FRACTION,
    data_source: str | None = None,
    skip_bad: bool = False,
    split: str = "val",
    limit: int = 256,
    knobs: tuple[str, ...] = (),
    batch_size: int = 32,
) -> Retargeted:
    """Fit ``source``'s budget (mean ``cost`` at most ``target``, default a MAC fraction) on the first ``limit``
    clips of ``split`` (of the checkpoint's data settings, from ``data_source`` if given) and write the
    re-targeted checkpoint to ``out``, recording the fit under ``budget``."""
    if limit < 1 or batch_size < 1:
        raise ConfigError(f"limit and batch size must be >= 1, got {limit} and {batch_size}")
    if cost.name == MAC_FRACTION.name and not 0.0 < target <= 1.0:
        raise ConfigError(f"the target MAC fraction must be in (0, 1], got {target}")
    loaded = load_model(source)
    if not isinstance(loaded.model, DynamicModel):
        raise ConfigError(f"{source} is a {loaded.kind!r} checkpoint; a budget needs a dynamic one (aap output)")
    if cost.check is not None:
        cost.check(loaded.model)
    data = replace(loaded.data, source=data_source or loaded.data.source, skip_bad=skip_bad)
    data = data.with_clip_shape(loaded.model.clip_shape)
    dataset = build_dataset(data, split, classes=loaded.classes)
    clips = torch.stack([dataset[i]["clip"] for i in range(min(limit, len(dataset)))])
    model = loaded.model.eval()
    before = cost.mean(model, clips, batch_size=batch_size)
    fit = fit_cost(model, clips, target, cost, knobs=knobs, batch_size=batch_size)
    record = {
        f"target_{cost.name}": fit.target,
        "offset": fit.offset,
        "shifted_knobs": list(knobs) or "all",
        f"{cost.name}_before": before,
        cost.name: fit.value,
        "num_clips": fit.num_clips,
        "data": data.source,
        "split": split,
        "source_checkpoint": str(loaded.path),
    }
    if cost.name != MAC_FRACTION.name:
        record["mac_fraction"] = mean_mac_fraction(model, clips, batch_size=batch_size)
    path = save_with_knobs(model, loaded.checkpoint, source=source, out=out, budget=record)
    return Retargeted(path, fit, before, record)
