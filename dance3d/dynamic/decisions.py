"""Per-clip, per-block decisions: the structure compact execution will consume.

For a batch of ``B`` clips and one gated block, a :class:`BlockDecision` holds 0/1 masks over
the block's output frames, its inner channels and its spatial tiles. Kept counts are always one
of the block's discrete levels, so a compact executor can bucket clips by
``(kept_frames, kept_channels, kept_tiles)``, gather ``W_a[kept_channels]`` /
``W_b[:, kept_channels]``, run the residual branch on the kept frames as one shorter clip (the
compressed clip) and on the kept tiles with their spatial halo, and add it to the dense shortcut
there; skipped positions get the shortcut alone (then the block's output activation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TileGrid:
    """An ``height x width`` map cut into ``rows x cols`` tiles of ``tile_h x tile_w`` (last ones may be cut)."""

    height: int
    width: int
    rows: int
    cols: int

    @classmethod
    def for_map(cls, height: int, width: int, tile_size: int) -> TileGrid:
        return cls(height, width, max(1, height // tile_size), max(1, width // tile_size))

    @property
    def tile_h(self) -> int:
        return math.ceil(self.height / self.rows)

    @property
    def tile_w(self) -> int:
        return math.ceil(self.width / self.cols)

    def expand(self, tiles: torch.Tensor) -> torch.Tensor:
        """(B, rows*cols) tile mask -> (B, height, width) position mask."""
        grid = tiles.reshape(-1, self.rows, self.cols)
        grid = grid.repeat_interleave(self.tile_h, dim=1).repeat_interleave(self.tile_w, dim=2)
        return grid[:, : self.height, : self.width]


@dataclass(frozen=True)
class GateLevels:
    """Allowed kept counts of one gated block, per dimension."""

    frames: tuple[int, ...]
    channels: tuple[int, ...]
    tiles: tuple[int, ...]


@dataclass
class BlockDecision:
    """Hard decisions of one gated block for a batch: bool masks, one row per clip."""

    frames: torch.Tensor  # (B, T_out) bool
    channels: torch.Tensor  # (B, C_inner) bool
    tiles: torch.Tensor  # (B, rows * cols) bool
    grid: TileGrid

    @property
    def kept_frames(self) -> torch.Tensor:
        return self.frames.sum(dim=1)

    @property
    def kept_channels(self) -> torch.Tensor:
        return self.channels.sum(dim=1)

    @property
    def kept_tiles(self) -> torch.Tensor:
        return self.tiles.sum(dim=1)
