"""Analytic MAC accounting of what executes (docs/design.md §3 convention).

Dense cost of a conv: ``output elements x in_channels / groups x kernel volume``; of a linear
layer: ``output elements x in_features``; per clip. A gated block's branch convs scale with the
kept fraction of output positions (kept frames x kept tile area) and with the kept fraction of
inner channels on each gated side: once for a conv whose input *or* output is the gated inner
activation (or a depthwise conv gated on both), squared for a dense conv gated on both sides.
Kept frames cost exactly their share (compressed clip, no temporal halo); the spatial halo a
compact executor recomputes around kept tiles is not counted (it shows up in measured realisation
efficiency). Stem, shortcut convs, head and the controller are counted dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

Fractions = torch.Tensor | np.ndarray
GateSide = Literal["none", "in", "out", "both", "depthwise"]
COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def layer_macs_per_clip(module: nn.Module, output: torch.Tensor) -> int:
    """Dense MACs of one conv/linear call, per clip (batch dimension divided out)."""
    per_clip = output.numel() // output.shape[0]
    if isinstance(module, nn.Linear):
        return per_clip * module.in_features
    return per_clip * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def gate_side(conv: nn.Module, *, gated_in: bool, gated_out: bool) -> GateSide:
    if gated_in and gated_out:
        depthwise = isinstance(conv, nn.Conv3d | nn.Conv2d | nn.Conv1d) and conv.groups == conv.in_channels
        return "depthwise" if depthwise else "both"
    return "in" if gated_in else "out" if gated_out else "none"


def channel_factor(side: GateSide, channel_fraction: Fractions) -> Fractions:
    """What share of a conv's MACs runs at a kept channel fraction (tensor or NumPy array, per clip)."""
    if side == "none":
        ones_like = torch.ones_like if isinstance(channel_fraction, torch.Tensor) else np.ones_like
        return ones_like(channel_fraction)
    if side == "both":
        return channel_fraction * channel_fraction
    return channel_fraction


class MacRecorder:
    """Forward hooks on every conv/linear of a module while entered: dense MACs per clip, by module name."""

    def __init__(self, module: nn.Module) -> None:
        self.macs: dict[str, int] = {}
        self._module = module
        self._handles: list = []

    def __enter__(self) -> MacRecorder:
        self._handles = [
            m.register_forward_hook(self._hook(name))
            for name, m in self._module.named_modules()
            if isinstance(m, COUNTED)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.macs[name] = layer_macs_per_clip(module, output)

        return hook


@dataclass(frozen=True)
class GatedConv:
    """One conv of a gated residual branch: its name in the backbone and which side is gated."""

    name: str
    side: GateSide


def block_macs(
    convs: list[GatedConv],
    dense_macs: dict[str, int],
    *,
    position_fraction: Fractions,
    channel_fraction: Fractions,
) -> Fractions:
    """Per-clip MACs (B,) of one gated branch given kept fractions (B,): tensors (differentiable), or NumPy
    arrays (compact execution accounts on the host)."""
    total = 0
    for conv in convs:
        total = total + dense_macs[conv.name] * channel_factor(conv.side, channel_fraction)
    return total * position_fraction
