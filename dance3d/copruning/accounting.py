"""Per-sample MACs of a co-pruned forecaster, from its masks (differentiable) and from what executes.

The dense cost of every conv of the backbone comes from the profiling layer's dispatch-level
counter (:func:`profiling.count_macs` on one dense sample). A co-pruned sample computes every conv
at its kept tiles only, so each conv's MACs scale with the kept fraction of positions; the
translator's MLP convs also scale with their block's kept fraction of hidden channels, on the side
the channel mask gates (:func:`dance3d.dynamic.accounting.channel_factor`). The mask generator and
the channel-importance responses are counted on top. Compact execution computes exactly these
MACs, also where the map's edge cuts the last row or column of tiles (a test counts them with
:func:`profiling.count_macs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils._python_dispatch import _disable_current_modes

from dance3d.dynamic.accounting import GateSide, channel_factor
from profiling import count_macs


@dataclass(frozen=True)
class GatedLayer:
    """A conv whose channels a block's channel mask gates: which block, which side."""

    block: int
    side: GateSide


@dataclass(frozen=True)
class DenseMacs:
    """Dense MACs per sample of each conv of a backbone (by module name), and their total."""

    layers: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.layers.values())


def dense_layer_macs(backbone: nn.Module, sample: torch.Tensor) -> DenseMacs:
    """Executed MACs of each layer of ``backbone`` on one sample (``sample``: batch of 1)."""
    with _disable_current_modes():  # also when called while an outer counter records
        counted = count_macs(backbone, sample.detach())
    return DenseMacs({layer.layer: int(layer.macs) for layer in counted.layers if layer.macs})


def sample_macs(
    dense: DenseMacs,
    gated: dict[str, GatedLayer],
    *,
    position_fraction: torch.Tensor,
    channel_fractions: torch.Tensor | None,
    generator_macs: int,
    decision_macs: int = 0,
) -> torch.Tensor:
    """Per-sample MACs (B,): every layer at the kept positions, gated layers at their kept channels.

    ``position_fraction`` (B,) kept share of the map; ``channel_fractions`` (B, blocks) kept share
    of each block's gated channels (None: all kept); ``generator_macs`` the mask generator's cost,
    ``decision_macs`` the channel decisions', which run only in samples with a kept position.
    """
    total = torch.zeros_like(position_fraction)
    for name, macs in dense.layers.items():
        layer = gated.get(name)
        factor = torch.ones_like(position_fraction)
        if layer is not None and channel_fractions is not None:
            factor = channel_factor(layer.side, channel_fractions[:, layer.block])
        total = total + macs * factor
    decisions = torch.where(position_fraction > 0, float(decision_macs), 0.0)
    return total * position_fraction + generator_macs + decisions
