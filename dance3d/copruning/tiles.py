"""Tiles of a feature map: scores, position masks, tile gathers with halo, scatters, masked group norm.

One :class:`~dance3d.dynamic.decisions.TileGrid` is laid on the SimVP latent map (1/4 of the
padded input); the same tiles, scaled by 2 and 4, cover the half- and full-resolution maps, so
one tile mask decides every stage. A convolution over kept tiles gathers each tile's input region
(the tile under the conv's stride plus its halo) from a map that is zero wherever nothing was
computed, runs as an ordinary dense conv with padding 0 on the stack of regions, and is scattered
back: exactly the masked dense convolution, computed only at kept positions.
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


class TileIndex:
    """The kept tiles of one sample on a grid: their rows and columns, and maps at any scale."""

    def __init__(self, kept: torch.Tensor, grid: TileGrid) -> None:
        self.grid = grid
        self.index = kept.nonzero().flatten()
        self.rows, self.cols = self.index // grid.cols, self.index % grid.cols

    def __len__(self) -> int:
        return int(self.index.numel())

    def tile_shape(self, scale: int) -> tuple[int, int]:
        return self.grid.tile_h * scale, self.grid.tile_w * scale

    def gather(
        self, x: torch.Tensor, *, scale: int, kernel: int = 1, stride: int = 1, padding: int = 0
    ) -> torch.Tensor:
        """Input regions (N * K, C, rh, rw) of a conv whose output tiles are at ``scale`` (``x``: (N, C, H, W)).

        Positions outside the map read zeros (the conv's zero padding).
        """
        th, tw = self.tile_shape(scale)
        rh, rw = stride * (th - 1) + kernel, stride * (tw - 1) + kernel
        need_h = stride * th * (self.grid.rows - 1) + rh
        need_w = stride * tw * (self.grid.cols - 1) + rw
        height, width = x.shape[-2:]
        x = F.pad(x, (padding, max(0, need_w - width - padding), padding, max(0, need_h - height - padding)))
        regions = x.unfold(2, rh, stride * th).unfold(3, rw, stride * tw)  # (N, C, rows, cols, rh, rw)
        picked = regions[:, :, self.rows, self.cols]  # (N, C, K, rh, rw)
        return picked.transpose(1, 2).reshape(-1, x.shape[1], rh, rw)

    def scatter(self, tiles: torch.Tensor, *, frames: int, scale: int, size: tuple[int, int]) -> torch.Tensor:
        """(N * K, C, th, tw) tiles -> (N, C, *size) map, zero outside the kept tiles."""
        th, tw = self.tile_shape(scale)
        k, channels = len(self), tiles.shape[1]
        canvas = tiles.new_zeros(frames, channels, self.grid.rows, self.grid.cols, th, tw)
        canvas[:, :, self.rows, self.cols] = tiles.reshape(frames, k, channels, th, tw).transpose(1, 2)
        full = canvas.permute(0, 1, 2, 4, 3, 5).reshape(frames, channels, self.grid.rows * th, self.grid.cols * tw)
        return full[..., : size[0], : size[1]]

    def valid(self, *, scale: int, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """(1, K, 1, th, tw) float: 1 where a tile position lies inside a map of ``size``; None if all do."""
        th, tw = self.tile_shape(scale)
        rows = self.rows[:, None] * th + torch.arange(th, device=device)[None, :] < size[0]
        cols = self.cols[:, None] * tw + torch.arange(tw, device=device)[None, :] < size[1]
        inside = rows[:, :, None] & cols[:, None, :]
        if bool(inside.all()):
            return None
        return inside[None, :, None].float()


def tile_group_norm(
    tiles: torch.Tensor, norm: nn.GroupNorm, *, frames: int, valid: torch.Tensor | None
) -> torch.Tensor:
    """``norm`` of (N * K, C, th, tw) tiles with statistics per frame over its kept tiles (and valid positions)."""
    nk, channels, th, tw = tiles.shape
    k = nk // frames
    per_frame = tiles.reshape(frames, k, channels, th, tw).transpose(1, 2).reshape(frames, channels, k, th * tw)
    weight = None if valid is None else valid.reshape(1, 1, k, th * tw)
    if weight is None:
        weight = torch.ones(1, 1, k, th * tw, device=tiles.device, dtype=tiles.dtype)
    out = group_norm(per_frame, norm, weight)
    return out.reshape(frames, channels, k, th, tw).transpose(1, 2).reshape(nk, channels, th, tw)
