"""One batch's co-pruning decisions: kept tiles and each translator block's kept hidden channels."""

from __future__ import annotations

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

    def position_fraction(self) -> torch.Tensor:
        """Kept share of each sample's map (B,)."""
        return position_mask(self.tiles, self.grid).mean(dim=(1, 2, 3))

    def channel_fractions(self) -> torch.Tensor | None:
        """Kept share of each block's hidden channels (B, blocks)."""
        return None if self.channels is None else torch.stack([c.mean(dim=1) for c in self.channels], dim=1)
