"""Run-time knobs of a trained dynamic model: per-stage logit offsets the studies search.

A *stage* is a run of consecutive gated blocks with the same gate shape (output frames, inner
channels, tile grid), as in the stages of a ResNet. For each stage and each axis (frames,
channels, tiles) one knob shifts the controller's logits of that axis before the kept count is
chosen: a negative offset keeps fewer units (fewer MACs), a positive one keeps more. Offsets
change no weights; ``0`` everywhere is the trained controller. Axes with a single level (e.g. a
1x1 tile grid) have nothing to decide and get no knob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from dance3d.errors import ConfigError

AXES: tuple[str, ...] = ("frames", "channels", "tiles")


@dataclass(frozen=True)
class Knob:
    """One searchable offset: its name, range, and the gated blocks and axis it shifts."""

    name: str
    low: float
    high: float
    blocks: tuple[int, ...]
    axis: str
    default: float = 0.0


def stages(model) -> list[tuple[int, ...]]:
    """Gated block indices grouped into stages (consecutive blocks with equal gate specs)."""
    groups: list[list[int]] = []
    for index, spec in enumerate(model.gate_specs):
        if groups and model.gate_specs[groups[-1][-1]] == spec:
            groups[-1].append(index)
        else:
            groups.append([index])
    return [tuple(g) for g in groups]


def knob_space(model, *, low: float = -8.0, high: float = 8.0) -> list[Knob]:
    """The knobs of ``model``: ``stage{s}.{axis}_offset`` for every stage and axis with a choice."""
    if not low < 0.0 < high:
        raise ConfigError(f"knob range must contain 0, got [{low}, {high}]")
    knobs = []
    for s, blocks in enumerate(stages(model)):
        for axis in AXES:
            if all(len(getattr(model.levels[b], axis)) < 2 for b in blocks):
                continue
            knobs.append(Knob(f"stage{s}.{axis}_offset", low, high, blocks, axis))
    return knobs


def apply_knobs(model, values: Mapping[str, float]) -> None:
    """Set the logit offsets of ``model`` from ``{knob name: value}``; knobs not named are reset to 0."""
    space = {knob.name: knob for knob in knob_space(model)}
    unknown = sorted(set(values) - set(space))
    if unknown:
        raise ConfigError(f"unknown knob(s) {', '.join(unknown)}; this model has {', '.join(space) or 'none'}")
    offsets = torch.zeros(len(model.gate_specs), len(AXES))
    for name, value in values.items():
        value = float(value)
        if value != value:  # NaN
            raise ConfigError(f"knob {name} is NaN")
        knob = space[name]
        offsets[list(knob.blocks), AXES.index(knob.axis)] = value
    model.logit_offsets.copy_(offsets.to(model.logit_offsets.device))


def current_knobs(model) -> dict[str, float]:
    """The knob values now applied to ``model``."""
    offsets = model.logit_offsets.cpu()
    return {k.name: float(offsets[k.blocks[0], AXES.index(k.axis)]) for k in knob_space(model)}
