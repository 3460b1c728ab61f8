"""The search space, read from the model: its knobs (a dynamic model's logit offsets, a co-pruned model's
thresholds) plus execution options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch

from dance3d import dynamic
from dance3d.copruning.knobs import ThresholdKnob
from dance3d.dynamic import DynamicModel, Knob, apply_knobs, knob_space, set_execution_mode
from dance3d.errors import ConfigError
from studies.config import StudyConfig

MODE_PARAM, BATCH_PARAM = "execution_mode", "batch_size"


@dataclass(frozen=True)
class Point:
    """One configuration: knob values (unsearched knobs stay as trained), execution mode and batch size."""

    knobs: dict[str, float]
    execution_mode: str
    batch_size: int


@dataclass(frozen=True)
class SearchSpace:
    knobs: tuple[Knob | ThresholdKnob, ...]
    step: float | None
    execution_modes: tuple[str, ...]
    batch_sizes: tuple[int, ...]

    def suggest(self, trial: optuna.Trial) -> Point:
        """Sample a point; options with a single value are fixed, not parameters."""
        knobs = {k.name: trial.suggest_float(k.name, k.low, k.high, step=self.step) for k in self.knobs}
        mode = self.execution_modes[0]
        if len(self.execution_modes) > 1:
            mode = trial.suggest_categorical(MODE_PARAM, list(self.execution_modes))
        batch_size = self.batch_sizes[0]
        if len(self.batch_sizes) > 1:
            batch_size = trial.suggest_categorical(BATCH_PARAM, list(self.batch_sizes))
        return Point(knobs, mode, int(batch_size))

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (stored with the study)."""
        return {
            "knobs": [_describe_knob(k) for k in self.knobs],
            "knob_step": self.step,
            "execution_modes": list(self.execution_modes),
            "batch_sizes": list(self.batch_sizes),
        }


def _describe_knob(knob: Knob | ThresholdKnob) -> dict[str, Any]:
    if isinstance(knob, ThresholdKnob):
        return {"name": knob.name, "low": knob.low, "high": knob.high}
    return {"name": knob.name, "low": knob.low, "high": knob.high, "axis": knob.axis, "blocks": list(knob.blocks)}


def check_execution_modes(modes: tuple[str, ...], *, available: tuple[str, ...] | None = None) -> None:
    """Inference modes the model supports (default: dynamic models', ``dance3d.dynamic.EXECUTION_MODES`` but train)."""
    if available is None:
        available = tuple(m for m in dynamic.EXECUTION_MODES if m != "train")
    bad = [m for m in modes if m not in available]
    if bad:
        raise ConfigError(f"execution mode(s) {', '.join(bad)} not available; this version has {', '.join(available)}")


def build_space(model: DynamicModel, config: StudyConfig) -> SearchSpace:
    """The model's knobs (all, or those named in ``config.knobs``) and the execution options."""
    check_execution_modes(config.execution_modes)
    knobs = select_knobs(knob_space(model, low=config.knob_low, high=config.knob_high), config.knobs)
    if not knobs:
        raise ConfigError("this model has no knobs to search (every gate has a single level)")
    return SearchSpace(tuple(knobs), config.knob_step, tuple(config.execution_modes), tuple(config.batch_sizes))


def select_knobs(knobs: list, names: tuple[str, ...]) -> list:
    """The ``knobs`` named in ``names`` (all when none is named); an unknown name is an error."""
    if not names:
        return knobs
    known = {k.name for k in knobs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown knob(s) {', '.join(unknown)}; this model has {', '.join(sorted(known))}")
    return [k for k in knobs if k.name in names]


def configure(model: DynamicModel, point: Point):
    """Apply ``point`` to ``model``; returns what to call on a batch of clips."""
    apply_knobs(model, point.knobs)
    set_execution_mode(model, point.execution_mode)
    return model


def dense_forward(model: DynamicModel, execution_mode: str):
    """Call the model with everything kept (the dense baseline) in ``execution_mode``."""
    apply_knobs(model, {})
    set_execution_mode(model, execution_mode)

    def forward(clips: torch.Tensor) -> torch.Tensor:
        return model(clips, decisions=model.full_decisions(len(clips), clips.device))

    return forward
