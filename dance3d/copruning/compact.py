"""Compact execution of a co-pruned SimVP: each sample computes its kept tiles and channels only.

Samples run one at a time, each as its own sparse sub-network. Every conv gathers its kept output
tiles' input regions (with halo) from a map that is zero outside the kept tiles
(:class:`~dance3d.copruning.tiles.TileIndex`), runs on the stack of regions with padding 0, and
its output tiles are scattered back only where the next conv needs neighbours; group norms take
their statistics over the kept tiles. The translator MLPs run with the sample's kept hidden
channels sliced out of the weights. The decoder's 2x bilinear upsampling is applied to whole maps
(it has no MACs). A sample with no kept tile costs the mask generator alone: its forecast is
persistence. Outputs equal :meth:`CoprunedSimVP._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.decisions import Decisions
from dance3d.copruning.fallback import compact_with_fallback
from dance3d.copruning.tiles import TileIndex, tile_group_norm
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


def _conv(conv: nn.Conv2d, tiles: TileIndex, x: torch.Tensor, *, scale: int) -> torch.Tensor:
    """``conv`` at the kept output tiles (at ``scale`` x the latent grid) of the map ``x`` (N, C, H, W)."""
    regions = tiles.gather(x, scale=scale, kernel=conv.kernel_size[0], stride=conv.stride[0], padding=conv.padding[0])
    return F.conv2d(regions, conv.weight, conv.bias, stride=conv.stride, groups=conv.groups)


def _conv_norm_act(stage: nn.Sequential, tiles: TileIndex, x: torch.Tensor, *, scale: int) -> torch.Tensor:
    conv, norm, act = stage
    out = _conv(conv, tiles, x, scale=scale)
    valid = tiles.valid(scale=scale, size=_out_size(x, conv, scale), device=x.device)
    return act(tile_group_norm(out, norm, frames=x.shape[0], valid=valid))


def _out_size(x: torch.Tensor, conv: nn.Conv2d, scale: int) -> tuple[int, int]:
    stride = conv.stride[0]
    return x.shape[-2] // stride, x.shape[-1] // stride


def sample_tiled(model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor):
    """One sample (1, t_in, C, H, W) on its kept tiles ``kept`` (rows * cols,), ``scores`` its ``S`` (h, w):
    (forecast (1, t_out, C, H, W), kept channels per block or None)."""
    bb = model.backbone
    t_in, t_out = bb.t_in, bb.t_out
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), 4)
    tiles = TileIndex(kept, grid)
    if len(tiles) == 0:  # nothing to compute: persistence
        channels = None if not model.config.model_mask else [None] * len(model.blocks)
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone(), channels
    full, latent_size = tuple(frames.shape[-2:]), (grid.height, grid.width)
    half, k = (full[0] // 2, full[1] // 2), len(tiles)
    skip = _conv_norm_act(bb.stem, tiles, frames, scale=4)  # (t_in * k, hs/2, 4th, 4tw)
    enc = _conv_norm_act(bb.encoder[0], tiles, tiles.scatter(skip, frames=t_in, scale=4, size=full), scale=2)
    enc = _conv_norm_act(bb.encoder[1], tiles, tiles.scatter(enc, frames=t_in, scale=2, size=half), scale=1)
    th, tw = tiles.tile_shape(1)
    stacked = enc.reshape(t_in, k, -1, th, tw).transpose(0, 1).reshape(k, -1, th, tw)  # frames as channels
    t = F.conv2d(stacked, bb.translator[0].weight, bb.translator[0].bias)
    weight = tiles.gather(scores[None, None], scale=1).reshape(k, 1, th, tw)  # S at the kept positions
    valid = tiles.valid(scale=1, size=latent_size, device=x.device)
    if valid is not None:
        weight = weight * valid[0]
    channels = []
    for block in model.blocks:
        spatial = _conv(block.spatial, tiles, tiles.scatter(t, frames=1, scale=1, size=latent_size), scale=1)
        z = tile_group_norm(spatial, block.norm, frames=1, valid=valid)
        expand, act, project = block.mlp
        mask = model.decide_channels(_as_map(z), _as_map(weight), block, soft=False)
        if mask is None:
            hidden = act(F.conv2d(z, expand.weight, expand.bias))
            t = t + F.conv2d(hidden, project.weight, project.bias)
            continue
        channels.append(mask)
        idx = mask[0].nonzero().flatten()
        hidden = act(F.conv2d(z, expand.weight[idx], expand.bias[idx]))
        t = t + F.conv2d(hidden, project.weight[:, idx], project.bias)
    out = F.conv2d(t, bb.translator[-1].weight, bb.translator[-1].bias)  # (k, t_out * hs, th, tw)
    out = out.reshape(k, t_out, -1, th, tw).transpose(0, 1).reshape(t_out * k, -1, th, tw)
    latent = tiles.scatter(out, frames=t_out, scale=1, size=latent_size)
    up, stage = bb.decoder[0]
    decoded = _conv_norm_act(stage, tiles, up(latent), scale=2)
    up, stage = bb.decoder[1]
    decoded = _conv_norm_act(stage, tiles, up(tiles.scatter(decoded, frames=t_out, scale=2, size=half)), scale=4)
    last_skip = skip.reshape(t_in, k, *skip.shape[1:])[-1].repeat(t_out, 1, 1, 1)
    delta = F.conv2d(torch.cat([decoded, last_skip], dim=1), bb.head.weight, bb.head.bias)
    delta = tiles.scatter(delta, frames=t_out, scale=4, size=full)[..., :height, :width]
    out = x[:, -1:] + delta.reshape(1, t_out, bb.channels, height, width)
    return out, channels if model.config.model_mask else None


def _as_map(tiles: torch.Tensor) -> torch.Tensor:
    """(K, C, th, tw) kept tiles as one (1, C, K * th, tw) map: position sums and means see the same values."""
    return tiles.transpose(0, 1).reshape(1, tiles.shape[1], -1, tiles.shape[-1])


def sample_whole_map(model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor):
    """One sample on the whole map with its skipped tiles masked (the dense fallback): same returns as
    :func:`sample_tiled`; ``scores`` (1, h, w), ``tiles`` (1, rows * cols)."""
    out, decisions = model.masked_forward(x, scores, grid, tiles)
    return out, None if decisions.channels is None else list(decisions.channels)


def compact_forward(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid
) -> tuple[torch.Tensor, Decisions]:
    """Forecasts of a batch of a ``CoprunedSimVP``, each sample computing only what its masks keep; and the masks.

    With a fallback calibration (``model.fallback``), a sample whose kept-tile count is at or above its
    break-even runs on the whole map instead (:mod:`dance3d.copruning.fallback`).
    """
    tiles = model.decide_tiles(scores, grid, soft=False)
    hidden = [block.mlp[0].out_channels for block in model.blocks] if model.config.model_mask else None
    return compact_with_fallback(model, x, scores, grid, tiles, hidden)
