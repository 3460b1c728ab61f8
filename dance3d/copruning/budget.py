"""Re-target a co-pruned forecaster to a mean MAC fraction without training: one offset on its thresholds.

Each threshold ``t`` (``data_threshold``, ``channel_threshold``, or the ones named) moves to
``sigmoid(logit(t) - offset)``: a positive offset lowers it and keeps more tiles or channels, a
negative one raises it. :func:`fit_copruned_budget` bisects for the largest offset whose mean MAC
fraction (generator included) over the given samples is at most the target, as ``dance3d budget``
does for a DANCE model. Keeping more tiles changes which positions vote for channels, so the MAC
fraction is not strictly monotone in the offset; the offset returned always meets the target on
the fitting samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import LoadedModel
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.checkpoint import save_with_thresholds
from dance3d.copruning.knobs import active_knobs, apply_thresholds, check_knob_names, current_thresholds
from dance3d.dynamic.budget import largest_offset_within, mean_mac_fraction
from dance3d.errors import ConfigError

SPAN = 12.0  # logits: thresholds from about 6e-6 to 1 - 6e-6 around 0.5
TOLERANCE = 1e-3


@dataclass(frozen=True)
class ThresholdFit:
    """The fitted offset, the thresholds it gives and the mean MAC fraction before and after on the samples."""

    target_mac_fraction: float
    offset: float
    thresholds: dict[str, float]
    mac_fraction_before: float
    mac_fraction: float
    num_samples: int


def shifted(threshold: float, offset: float) -> float:
    """``threshold`` moved by ``offset`` logits towards keeping more (positive) or less (negative), inside (0, 1)."""
    logit = math.log(threshold / (1.0 - threshold)) - offset
    return min(max(1.0 / (1.0 + math.exp(-logit)), 1e-6), 1.0 - 1e-6)


def fit_copruned_budget(
    model: CoprunedForecaster,
    inputs: torch.Tensor,
    target_mac_fraction: float,
    *,
    thresholds: tuple[str, ...] = (),
    batch_size: int = 32,
) -> ThresholdFit:
    """Shift ``thresholds`` (default: every active one) of ``model`` by the largest offset whose mean MAC fraction
    on ``inputs`` is at most ``target_mac_fraction``; leaves the model set to it."""
    if not 0.0 < target_mac_fraction <= 1.0:
        raise ConfigError(f"the target MAC fraction must be in (0, 1], got {target_mac_fraction}")
    if len(inputs) == 0:
        raise ConfigError("fitting a budget needs at least one sample")
    check_knob_names(model.config, thresholds)
    base = current_thresholds(model)
    names = thresholds or active_knobs(model.config)
    model.eval()
    before = mean_mac_fraction(model, inputs, batch_size=batch_size)

    def set_offset(offset: float) -> float:
        apply_thresholds(model, {name: shifted(base[name], offset) for name in names})
        return mean_mac_fraction(model, inputs, batch_size=batch_size)

    offset, value = largest_offset_within(set_offset, target_mac_fraction, span=SPAN, tolerance=TOLERANCE)
    if offset is None:
        apply_thresholds(model, base)
        raise ConfigError(
            f"the target MAC fraction {target_mac_fraction:g} is below what this model reaches by raising "
            f"{', '.join(names)}: {value:.4f} (the mask generator and what every sample must compute)"
        )
    set_offset(offset)
    return ThresholdFit(target_mac_fraction, offset, current_thresholds(model), before, value, len(inputs))


def retarget_copruned(
    loaded: LoadedModel, inputs: torch.Tensor, target_mac_fraction: float, *, out: str | Path,
    thresholds: tuple[str, ...] = (), batch_size: int = 32, **record: Any,
) -> tuple[Path, ThresholdFit]:  # fmt: skip
    """Fit the budget of a loaded co-pruned checkpoint on ``inputs`` and write it to ``out`` with the fit (and
    ``record``) under ``budget``."""
    fit = fit_copruned_budget(loaded.model, inputs, target_mac_fraction, thresholds=thresholds, batch_size=batch_size)
    entry = {
        "target_mac_fraction": fit.target_mac_fraction,
        "offset": fit.offset,
        "shifted_knobs": list(thresholds) or "all",
        "mac_fraction_before": fit.mac_fraction_before,
        "mac_fraction": fit.mac_fraction,
        "num_clips": fit.num_samples,
        "source_checkpoint": str(loaded.path),
        **record,
    }
    path = save_with_thresholds(loaded.model, loaded.checkpoint, source=loaded.path, out=out, budget=entry)
    return path, fit


__all__ = ["ThresholdFit", "fit_copruned_budget", "retarget_copruned", "shifted"]
