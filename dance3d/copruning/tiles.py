"""Tiles of a feature map: per-tile scores, position masks, and group norms over the kept positions.

One :class:`~dance3d.dynamic.decisions.TileGrid` is laid on the latent map (1/4 of the padded
input); the same tiles, scaled by 2 and 4, cover the half- and full-resolution maps, so one tile
mask decides every stage. Compact execution holds the kept positions themselves
(:mod:`dance3d.copruning.kept_positions`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.dynamic.decisions import TileGrid


def tile_scores(scores: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Mean of a (B, h, w) map over each tile: (B, rows * cols) (cut edge tiles average their own cells)."""
    pad_h, pad_w = grid.rows * grid.tile_h - grid.height, grid.cols * grid.tile_w - grid.width
    total = F.pad(scores, (0, pad_w, 0, pad_h))
    count = F.pad(torch.ones_like(scores[:1]), (0, pad_w, 0, pad_h))

    def per_tile(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(t.shape[0], grid.rows, grid.tile_h, grid.cols, grid.tile_w)
        return t.sum(dim=(2, 4)).flatten(1)

    return per_tile(total) / per_tile(count)


def position_mask(tiles: torch.Tensor, grid: TileGrid, scale: int = 1) -> torch.Tensor:
    """(B, rows * cols) tile mask -> (B, 1, height * scale, width * scale) position mask (differentiable)."""
    mask = grid.expand(tiles)[:, None]
    if scale > 1:
        mask = mask.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return mask


def group_norm(x: torch.Tensor, norm: nn.GroupNorm, weight: torch.Tensor | None) -> torch.Tensor:
    """``norm`` with statistics over the positions where ``weight`` is 1 (all positions when None).

    ``x`` (N, C, ...); ``weight`` broadcastable to (N, 1, ...). A group with no kept position
    gets statistics 0 / 1 (its output is masked away by the caller).
    """
    if weight is None:
        return norm(x)
    n, c = x.shape[:2]
    groups = norm.num_groups
    xg = x.reshape(n, groups, c // groups, -1)
    wg = weight.expand(n, 1, *x.shape[2:]).reshape(n, 1, 1, -1)
    count = (wg.sum(dim=3, keepdim=True) * (c // groups)).clamp(min=1.0)
    mean = (xg * wg).sum(dim=(2, 3), keepdim=True) / count
    var = (((xg - mean) ** 2) * wg).sum(dim=(2, 3), keepdim=True) / count
    y = ((xg - mean) / torch.sqrt(var + norm.eps)).reshape_as(x)
    if norm.affine:
        shape = (1, c) + (1,) * (x.ndim - 2)
        y = y * norm.weight.reshape(shape) + norm.bias.reshape(shape)
    return y
