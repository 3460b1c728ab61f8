"""Static baselines for co-pruning at matched MACs: a uniformly narrowed SimVP, fixed and random tile sets.

* **Uniform channel pruning** (:func:`prune_simvp`): every width of a trained SimVP scaled by one
  ratio, keeping in each layer the output channels whose filters have the largest L1 norm (and the
  matching input slices downstream); the narrow model is then fine-tuned like the co-pruned ones.
  :func:`match_width` picks the ratio whose counted MACs are closest to a target.
* **Static tile sets** (:class:`StaticTilesSimVP`): the dense backbone computes the same number of
  tiles for every sample, either a fixed centred crop (``crop``) or a fresh random choice per sample
  (``drop``); skipped tiles forecast persistence, as in co-pruning. No generator, no channel mask.
  :func:`tile_budget` picks the tile count whose MACs are closest to a target.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.model import CoprunedSimVP
from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import SimVP
from profiling import count_macs

STATIC_LAYOUTS = ("crop", "drop")


def _top_l1(conv: nn.Conv2d, keep: int, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output filters of ``conv`` with the largest L1 norm."""
    norms = conv.weight.detach().abs().flatten(1).sum(dim=1) if rows is None else rows
    return norms.topk(keep).indices.sort().values


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor | None) -> None:
    weight = src.weight.detach()[out_idx]
    if in_idx is not None:
        weight = weight[:, in_idx]
    dst.weight.data.copy_(weight)
    if src.bias is not None:
        dst.bias.data.copy_(src.bias.detach()[out_idx])


def _copy_norm(dst: nn.GroupNorm, src: nn.GroupNorm, idx: torch.Tensor) -> None:
    if src.affine:
        dst.weight.data.copy_(src.weight.detach()[idx])
        dst.bias.data.copy_(src.bias.detach()[idx])


def _framewise(idx: torch.Tensor, frames: int, width: int) -> torch.Tensor:
    """Channel indices ``idx`` of each of ``frames`` frames stacked as channels of ``width`` each."""
    return torch.cat([t * width + idx for t in range(frames)])


def prune_simvp(dense: SimVP, *, hidden_spatial: int, hidden_temporal: int) -> SimVP:
    """A narrower SimVP initialised from ``dense`` by keeping its largest-L1 channels in every layer."""
    hs, ht = dense.stem[0].out_channels * 2, dense.translator[0].out_channels
    if hidden_spatial % 2 or not 2 <= hidden_spatial <= hs or not 1 <= hidden_temporal <= ht:
        raise ConfigError(
            f"pruned widths must be an even hidden_spatial in [2, {hs}] and hidden_temporal in [1, {ht}], "
            f"got {hidden_spatial}, {hidden_temporal}"
        )
    t_in, t_out = dense.t_in, dense.t_out
    blocks = len(dense.translator) - 2
    narrow = SimVP(
        dense.channels, t_in=t_in, t_out=t_out, hidden_spatial=hidden_spatial, hidden_temporal=hidden_temporal,
        translator_blocks=blocks,
    )  # fmt: skip
    half = hidden_spatial // 2
    stem = _top_l1(dense.stem[0], half)
    enc0 = _top_l1(dense.encoder[0][0], hidden_spatial)
    enc1 = _top_l1(dense.encoder[1][0], hidden_spatial)
    width = _top_l1(dense.translator[0], hidden_temporal)
    out_rows = dense.translator[-1].weight.detach().abs().flatten(1).sum(dim=1).reshape(t_out, hs).sum(dim=0)
    latent_out = _top_l1(dense.translator[-1], hidden_spatial, rows=out_rows)
    dec0 = _top_l1(dense.decoder[0][1][0], hidden_spatial)
    dec1 = _top_l1(dense.decoder[1][1][0], half)

    def stage(dst: nn.Sequential, src: nn.Sequential, out_idx: torch.Tensor, in_idx: torch.Tensor | None) -> None:
        _copy_conv(dst[0], src[0], out_idx, in_idx)
        _copy_norm(dst[1], src[1], out_idx)

    stage(narrow.stem, dense.stem, stem, None)
    stage(narrow.encoder[0], dense.encoder[0], enc0, stem)
    stage(narrow.encoder[1], dense.encoder[1], enc1, enc0)
    _copy_conv(narrow.translator[0], dense.translator[0], width, _framewise(enc1, t_in, hs))
    for dst, src in zip(narrow.translator[1:-1], dense.translator[1:-1], strict=True):
        hidden = _top_l1(src.mlp[0], dst.mlp[0].out_channels)
        _copy_conv(dst.spatial, src.spatial, width, None)
        _copy_norm(dst.norm, src.norm, width)
        _copy_conv(dst.mlp[0], src.mlp[0], hidden, width)
        _copy_conv(dst.mlp[2], src.mlp[2], width, hidden)
    _copy_conv(narrow.translator[-1], dense.translator[-1], _framewise(latent_out, t_out, hs), width)
    stage(narrow.decoder[0][1], dense.decoder[0][1], dec0, latent_out)
    stage(narrow.decoder[1][1], dense.decoder[1][1], dec1, dec0)
    head_in = torch.cat([dec1, hs // 2 + stem])  # decoded features, then the last frame's skip
    _copy_conv(narrow.head, dense.head, torch.arange(dense.channels), head_in)
    return narrow


@dataclass(frozen=True)
class WidthChoice:
    """Widths of a uniformly pruned SimVP and its counted MACs per sample."""

    hidden_spatial: int
    hidden_temporal: int
    macs: int


def _narrow_macs(dense: SimVP, sample: torch.Tensor, spatial: int, temporal: int) -> int:
    narrow = SimVP(dense.channels, t_in=dense.t_in, t_out=dense.t_out, hidden_spatial=spatial,
                   hidden_temporal=temporal, translator_blocks=len(dense.translator) - 2)  # fmt: skip
    return int(count_macs(narrow, sample[:1]).macs_per_clip)


def match_width(dense: SimVP, sample: torch.Tensor, target_macs: float, *, tolerance: float = 0.02) -> WidthChoice:
    """Widths of the pruned SimVP whose counted MACs on ``sample`` match ``target_macs``, as uniform as possible.

    For each even spatial width the temporal width whose MACs are closest to the target is found
    by bisection (MACs grow with it); among the pairs within ``tolerance`` x the dense MACs of the
    target, the one whose two width ratios differ least wins (else the pair closest in MACs).
    """
    hs, ht = dense.stem[0].out_channels * 2, dense.translator[0].out_channels
    dense_macs = int(count_macs(dense, sample[:1]).macs_per_clip)
    choices = []
    for spatial in range(2, hs + 1, 2):
        low, high = 1, ht
        while low < high:  # smallest temporal width with MACs >= target
            mid = (low + high) // 2
            if _narrow_macs(dense, sample, spatial, mid) >= target_macs:
                high = mid
            else:
                low = mid + 1
        for temporal in {max(1, low - 1), low}:
            choices.append(WidthChoice(spatial, temporal, _narrow_macs(dense, sample, spatial, temporal)))
    close = [c for c in choices if abs(c.macs - target_macs) <= tolerance * dense_macs]
    if not close:
        return min(choices, key=lambda c: abs(c.macs - target_macs))
    return min(close, key=lambda c: (abs(c.hidden_spatial / hs - c.hidden_temporal / ht), abs(c.macs - target_macs)))


class NoScores(nn.Module):
    """Stands in for the mask generator of a static baseline: a constant map, no MACs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = math.ceil(x.shape[-2] / 4), math.ceil(x.shape[-1] / 4)
        return x.new_ones(x.shape[0], height, width)


def centre_order(grid: TileGrid) -> torch.Tensor:
    """Tile indices sorted by the distance of their centre from the map's centre (ties by index)."""
    rows = torch.arange(grid.rows).repeat_interleave(grid.cols).double()
    cols = torch.arange(grid.cols).repeat(grid.rows).double()
    distance = ((rows + 0.5) * grid.tile_h - grid.height / 2) ** 2 + ((cols + 0.5) * grid.tile_w - grid.width / 2) ** 2
    return torch.tensor(sorted(range(grid.rows * grid.cols), key=lambda i: (float(distance[i]), i)))


class StaticTilesSimVP(CoprunedSimVP):
    """The dense backbone on ``tiles`` tiles per sample, the same for every input (``crop``: the centred
    ones) or drawn at random per sample (``drop``, from a generator seeded by ``seed``); no channel mask."""

    def __init__(self, backbone: SimVP, *, tiles: int, layout: str, tile_size: int = 8, seed: int = 0) -> None:
        if layout not in STATIC_LAYOUTS:
            raise ConfigError(f"static tile layout must be one of {', '.join(STATIC_LAYOUTS)}, got {layout!r}")
        if tiles < 1:
            raise ConfigError(f"a static baseline needs at least one tile, got {tiles}")
        super().__init__(backbone, CopruneConfig(backbone="simvp-tiny", tile_size=tile_size, model_mask=False))
        self.generator = NoScores()
        self.tiles, self.layout, self.seed = tiles, layout, seed
        self._random = torch.Generator().manual_seed(seed)

    def reseed(self) -> StaticTilesSimVP:
        """Restart the random tile draws (so two evaluations see the same tiles)."""
        self._random.manual_seed(self.seed)
        return self

    def decide_tiles(self, scores: torch.Tensor, grid: TileGrid, *, soft: bool) -> torch.Tensor:
        count = grid.rows * grid.cols
        if self.tiles > count:
            raise ConfigError(f"{self.tiles} tiles asked of a grid of {count}")
        mask = scores.new_zeros(scores.shape[0], count)
        if self.layout == "crop":
            mask[:, centre_order(grid)[: self.tiles]] = 1.0
            return mask
        for row in mask:
            row[torch.randperm(count, generator=self._random)[: self.tiles]] = 1.0
        return mask


def static_position_fraction(grid: TileGrid, tiles: int) -> float:
    """Share of the latent map the ``tiles`` centred tiles cover (cut edge tiles count their inside part)."""
    mask = torch.zeros(1, grid.rows * grid.cols)
    mask[0, centre_order(grid)[:tiles]] = 1.0
    return float(position_mask(mask, grid).mean())


def tile_budget(grid: TileGrid, target_fraction: float) -> int:
    """The tile count (at least 1) whose MAC fraction (kept share of positions) is closest to ``target_fraction``."""
    counts = range(1, grid.rows * grid.cols + 1)
    return min(counts, key=lambda k: (abs(static_position_fraction(grid, k) - target_fraction), k))


def static_tiles_model(dense: SimVP, *, target_fraction: float, layout: str, sample: torch.Tensor,
                       tile_size: int = 8, seed: int = 0) -> StaticTilesSimVP:  # fmt: skip
    """A :class:`StaticTilesSimVP` on a copy of ``dense`` with the tile count matched to ``target_fraction``."""
    probe = StaticTilesSimVP(copy.deepcopy(dense), tiles=1, layout=layout, tile_size=tile_size, seed=seed)
    grid = probe.grid_for(*probe.generator(sample[:1]).shape[-2:])
    probe.tiles = tile_budget(grid, target_fraction)
    return probe


__all__ = [
    "STATIC_LAYOUTS",
    "StaticTilesSimVP",
    "WidthChoice",
    "match_width",
    "prune_simvp",
    "static_tiles_model",
    "tile_budget",
]
