"""Run-time knobs of a co-pruned forecaster: its two thresholds, searched by ``dance3d study``.

``data_threshold`` (a tile is computed when its mean ``S`` exceeds it) exists when the data mask
is on, ``channel_threshold`` (a hidden channel runs when its importance exceeds it) when
the model mask is on. Both lie in (0, 1). Applying them replaces the model's :class:`CopruneConfig`
with one that differs only in the thresholds: no weight changes, and applying the trained values
gives the trained model's outputs exactly. A lower threshold keeps more (more MACs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.errors import ConfigError

THRESHOLD_KNOBS: tuple[str, ...] = ("data_threshold", "channel_threshold")
DEFAULT_LOW, DEFAULT_HIGH = 0.01, 0.99


@dataclass(frozen=True)
class ThresholdKnob:
    """One searchable threshold: its name, search range inside (0, 1) and the value the model was trained with."""

    name: str
    low: float
    high: float
    default: float


def check_threshold_range(low: float, high: float) -> None:
    """A search range for thresholds: ``0 < low < high < 1``."""
    if not 0.0 < low < high < 1.0:
        raise ConfigError(f"a threshold range must satisfy 0 < low < high < 1, got [{low}, {high}]")


def active_knobs(config: CopruneConfig) -> tuple[str, ...]:
    """The thresholds that decide something under ``config`` (a switched-off mask has none)."""
    on = {"data_threshold": config.data_mask, "channel_threshold": config.model_mask}
    return tuple(name for name in THRESHOLD_KNOBS if on[name])


def threshold_knobs(
    config: CopruneConfig, *, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH
) -> list[ThresholdKnob]:
    """The knobs of a co-pruned model with settings ``config``, each ranging over ``[low, high]``."""
    check_threshold_range(low, high)
    return [ThresholdKnob(name, low, high, float(getattr(config, name))) for name in active_knobs(config)]


def check_knob_names(config: CopruneConfig, names: Iterable[str]) -> None:
    """Refuse knob ``names`` a co-pruned model with settings ``config`` does not have, saying which it has."""
    active = active_knobs(config)
    unknown = sorted(set(names) - set(active))
    if unknown:
        off = [name for name in unknown if name in THRESHOLD_KNOBS]
        why = f" ({', '.join(off)}: its mask is off in this model)" if off else ""
        raise ConfigError(
            f"unknown knob(s) {', '.join(unknown)}{why}; this co-pruned model has {', '.join(active) or 'none'}"
        )


def with_thresholds(config: CopruneConfig, values: Mapping[str, float]) -> CopruneConfig:
    """``config`` with the thresholds in ``values``; thresholds not named keep their value in ``config``."""
    check_knob_names(config, values)
    checked = {}
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"knob {name} must be a number in (0, 1), got {value!r}") from None
        if not (math.isfinite(number) and 0.0 < number < 1.0):
            raise ConfigError(f"knob {name} must be in (0, 1), got {value}")
        checked[name] = number
    return replace(config, **checked)


def apply_thresholds(
    model: CoprunedForecaster, values: Mapping[str, float], *, base: CopruneConfig | None = None
) -> None:
    """Set ``model``'s thresholds from ``values`` over ``base`` (default: its current settings)."""
    model.config = with_thresholds(base if base is not None else model.config, values)


def current_thresholds(model: CoprunedForecaster) -> dict[str, float]:
    """The values of ``model``'s knobs now."""
    return {name: float(getattr(model.config, name)) for name in active_knobs(model.config)}
