"""Activation variability: per-unit statistics that decisions use, and their coefficients of variation.

For a gated block's inner activation ``h`` (B, C, T, H, W) the units are its channels (mean
``|h|`` over T, H, W), its frames (mean over C, H, W) and its tiles (mean over C, T and the tile's
positions). The scale-free variability of a unit statistic ``s`` (B, U) is measured two ways:

- across clips: ``std_b(s[:, u]) / mean_b(s[:, u])`` for each unit ``u``;
- within a clip: ``std_u(s[b, :]) / mean_u(s[b, :])`` for each clip ``b``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dance3d.dynamic.decisions import TileGrid

UNITS: tuple[str, ...] = ("channel", "frame", "tile")
_EPS = 1e-6


def unit_statistics(inner: torch.Tensor, grid: TileGrid) -> dict[str, torch.Tensor]:
    """Mean |activation| per channel (B, C), frame (B, T) and tile (B, rows*cols)."""
    magnitude = inner.abs()
    spatial = magnitude.mean(dim=(1, 2))  # (B, H, W)
    padded_h, padded_w = grid.rows * grid.tile_h, grid.cols * grid.tile_w
    padded = F.pad(spatial, (0, padded_w - grid.width, 0, padded_h - grid.height))
    ones = F.pad(torch.ones_like(spatial[:1]), (0, padded_w - grid.width, 0, padded_h - grid.height))
    tile_sum = F.avg_pool2d(padded[:, None], (grid.tile_h, grid.tile_w)).flatten(1)
    tile_area = F.avg_pool2d(ones[:, None], (grid.tile_h, grid.tile_w)).flatten(1)
    return {
        "channel": magnitude.mean(dim=(2, 3, 4)),
        "frame": magnitude.mean(dim=(1, 3, 4)),
        "tile": tile_sum / tile_area,
    }


def cv_across_clips(stats: torch.Tensor) -> torch.Tensor:
    """(U,) coefficient of variation of each unit over the batch."""
    return stats.std(dim=0, unbiased=False) / (stats.mean(dim=0) + _EPS)


def cv_within_clip(stats: torch.Tensor) -> torch.Tensor:
    """(B,) coefficient of variation over the units of each clip (0 when there is one unit)."""
    if stats.shape[1] < 2:
        return torch.zeros(stats.shape[0], device=stats.device)
    return stats.std(dim=1, unbiased=False) / (stats.mean(dim=1) + _EPS)


def variability_terms(inner: dict[int, torch.Tensor], grids: list[TileGrid]) -> dict[str, torch.Tensor]:
    """Mean CV per kind (``across.channel``, ``within.frame``, ...) over gated blocks (differentiable)."""
    sums: dict[str, list[torch.Tensor]] = {}
    for index, activation in inner.items():
        for unit, stats in unit_statistics(activation, grids[index]).items():
            if stats.shape[1] > 1:
                sums.setdefault(f"within.{unit}", []).append(cv_within_clip(stats).mean())
            if stats.shape[0] > 1:
                sums.setdefault(f"across.{unit}", []).append(cv_across_clips(stats).mean())
    return {key: torch.stack(values).mean() for key, values in sums.items()}
