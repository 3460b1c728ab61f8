"""Compact execution of a co-pruned SimVP: each sample computes its kept tiles and channels only.

Samples run one at a time, each as its own sparse sub-network. Every feature map is held as its
values at the kept positions (:mod:`dance3d.copruning.kept_positions`): each conv gathers the
positions its taps read (zero where nothing was computed) and runs as one small dense conv, so it
computes the kept positions only, with no halo recomputed; group norms take their statistics over
the kept positions. The translator's 1x1 convs and MLPs are matrix products on the kept positions,
with the sample's kept hidden channels sliced out of the weights; its depthwise 7x7 convs gather
their taps the same way. The decoder's 2x bilinear upsampling (no MACs) is computed only where
the next conv reads. A sample with no kept tile costs the mask generator alone: its forecast is
persistence. Outputs equal :meth:`CoprunedSimVP._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.decisions import Decisions
from dance3d.copruning.fallback import compact_with_fallback
from dance3d.copruning.kept_positions import (
    KeptPositions,
    conv_norm_act_rows,
    conv_rows,
    kept_at_scales,
    linear_rows,
    map_rows,
    norm_rows,
    up_conv_norm_act_rows,
)
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


def sample_tiled(model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor):
    """One sample (1, t_in, C, H, W) on its kept tiles ``kept`` (rows * cols,), ``scores`` its ``S`` (h, w):
    (forecast (1, t_out, C, H, W), kept channels per block or None)."""
    bb = model.backbone
    t_out = bb.t_out
    if not bool(kept.any()):  # nothing to compute: persistence
        channels = None if not model.config.model_mask else [None] * len(model.blocks)
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone(), channels
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), 4)
    pixels = KeptPositions.whole(*frames.shape[-2:], device=x.device)
    full, half, latent = kept_at_scales(kept, grid)
    skip = conv_norm_act_rows(bb.stem, map_rows(frames), full.taps(pixels, bb.stem[0]))
    enc = conv_norm_act_rows(bb.encoder[0], skip, half.taps(full, bb.encoder[0][0]))
    enc = conv_norm_act_rows(bb.encoder[1], enc, latent.taps(half, bb.encoder[1][0]))
    t = linear_rows(bb.translator[0], enc.transpose(0, 1).reshape(1, len(latent), -1))  # frames as channels
    weight = scores.flatten()[latent.flat].reshape(1, 1, -1, 1)  # S at the kept positions
    channels, spatial_taps = [], latent.taps(latent, model.blocks[0].spatial)
    for block in model.blocks:
        z = norm_rows(block.norm, conv_rows(block.spatial, t, spatial_taps))
        expand, act, project = block.mlp
        mask = model.decide_channels(z.transpose(1, 2)[..., None], weight, block, soft=False)
        if mask is None:
            t = t + linear_rows(project, act(linear_rows(expand, z)))
            continue
        channels.append(mask)
        idx = mask[0].nonzero().flatten()
        hidden = act(F.linear(z, expand.weight[idx].flatten(1), expand.bias[idx]))
        t = t + F.linear(hidden, project.weight[:, idx].flatten(1), project.bias)
    out = linear_rows(bb.translator[-1], t).reshape(len(latent), t_out, -1).transpose(0, 1)  # (t_out, P, hs)
    decoded = up_conv_norm_act_rows(bb.decoder[0], out, latent, half)
    decoded = up_conv_norm_act_rows(bb.decoder[1], decoded, half, full)
    delta = linear_rows(bb.head, torch.cat([decoded, skip[-1:].expand(t_out, -1, -1)], dim=2))
    delta = full.scatter(delta)[..., :height, :width]
    out = x[:, -1:] + delta.reshape(1, t_out, bb.channels, height, width)
    return out, channels if model.config.model_mask else None


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
