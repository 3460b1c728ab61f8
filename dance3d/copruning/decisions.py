"""One batch's co-pruning decisions: kept tiles and each translator block's kept hidden channels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid


@dataclass
class Decisions:
    """One batch's masks: kept tiles (B, rows * cols) and each translator block's kept channels (B, hidden)."""

    grid: TileGrid
    tiles: torch.Tensor
    channels: list[torch.Tensor] | None  # None: the model mask is off (every channel kept)
    whole_map: torch.Tensor | None = None  # (B,) bool: compact samples computed on the whole map (dense fallback)

    def position_fraction(self) -> torch.Tensor:
        """Kept share of each sample's map (B,)."""
        return position_mask(self.tiles, self.grid).mean(dim=(1, 2, 3))

    def channel_fractions(self) -> torch.Tensor | None:
        """Kept share of each block's hidden channels (B, blocks)."""
        return None if self.channels is None else torch.stack([c.mean(dim=1) for c in self.channels], dim=1)


SampleRun = Callable[[int], tuple[torch.Tensor, list[torch.Tensor | None] | None]]


def run_per_sample(
    x: torch.Tensor, grid: TileGrid, tiles: torch.Tensor, hidden: list[int] | None, run: SampleRun
) -> tuple[torch.Tensor, Decisions]:
    """Compact execution's batch loop: ``run(b)`` computes sample ``b`` alone, giving its forecast and its kept
    channels per block (None for a block, or for all: nothing computed); ``hidden`` each block's width (None:
    the model mask is off). The forecasts stacked, and the batch's decisions (a skipped block keeps no channel)."""
    outs, per_block = [], []
    for b in range(x.shape[0]):
        out, channels = run(b)
        outs.append(out)
        per_block.append(channels)
    channels = None
    if hidden is not None:
        channels = [
            torch.cat([c[i] if c[i] is not None else x.new_zeros(1, width) for c in per_block])
            for i, width in enumerate(hidden)
        ]
    return torch.cat(outs), Decisions(grid, tiles, channels)
