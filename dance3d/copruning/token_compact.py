"""Compact execution of a co-pruned Transformer: each sample runs its kept tokens only.

Samples run one at a time. A sample's kept positions (the same in every frame) index its patches:
the patch embedding runs on those ``K`` patches per frame, every block runs on (T, K, D) with
plain (unmasked) attention: the space attention of a frame over its ``K`` tokens, the time
attention of a position over its frames, and the MLP with the sample's kept hidden channels
sliced out of the weights. The head's patches are scattered back into a zero change map, so a
dropped position forecasts the last input frame. A sample with no kept token costs the mask
generator alone. Outputs equal :meth:`CoprunedSTFormer._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.decisions import Decisions, run_per_sample
from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


def _mlp(block: nn.Module, z: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """The block's MLP on (T, K, D) at the ``kept`` (1, hidden) channels (all when None)."""
    fc1, act, fc2 = block.mlp
    if kept is None:
        return fc2(act(fc1(z)))
    idx = kept[0].nonzero().flatten()
    hidden = act(F.linear(z, fc1.weight[idx], fc1.bias[idx]))
    return F.linear(hidden, fc2.weight[:, idx], fc2.bias)


def _sample(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
    """One sample (1, t_in, C, H, W) with kept positions ``keep`` (N,): (forecast, kept channels per block or None)."""
    bb = model.backbone
    p, t_in, t_out = bb.patch, bb.t_in, bb.t_out
    idx = keep.nonzero().flatten()
    if idx.numel() == 0:  # nothing to compute: persistence
        channels = [None] * len(model.blocks) if model.config.model_mask else None
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone(), channels
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), p)
    h, w = frames.shape[-2] // p, frames.shape[-1] // p
    patches = F.unfold(frames, p, stride=p)[:, :, idx].transpose(1, 2)  # (T, K, C * p * p)
    tokens = F.linear(patches, bb.embed.weight.flatten(1), bb.embed.bias)  # (T, K, D)
    tokens = tokens + bb.position_embeddings(t_in, h, w, x.device)[:, idx]
    weight = scores.flatten()[idx][None]  # (1, K): S at the kept positions
    channels = []
    for block in model.blocks:
        tokens = tokens + block.space(block.norm_space(tokens))  # T frames, each over its K tokens
        tokens = tokens + block.time(block.norm_time(tokens).transpose(0, 1)).transpose(0, 1)  # K positions
        z = block.norm_mlp(tokens)
        kept = model.decide_channels(z[None], weight, block, soft=False)
        channels.append(kept)
        tokens = tokens + _mlp(block, z, kept)
    future = bb.to_future(tokens.permute(1, 2, 0)).permute(2, 0, 1)  # (t_out, K, D)
    values = bb.head(bb.norm(future))  # (t_out, K, C * p * p)
    canvas = values.new_zeros(t_out, h * w, values.shape[-1])
    canvas[:, idx] = values
    delta = canvas.reshape(t_out, h, w, bb.channels, p, p).permute(0, 3, 1, 4, 2, 5)
    delta = delta.reshape(1, t_out, bb.channels, h * p, w * p)[..., :height, :width]
    return x[:, -1:] + delta, channels if model.config.model_mask else None


def token_compact_forward(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid
) -> tuple[torch.Tensor, Decisions]:
    """Forecasts of a batch of a ``CoprunedSTFormer``, each sample running only its kept tokens; and the masks."""
    tiles = model.decide_tiles(scores, grid, soft=False)
    keep = position_mask(tiles, grid).flatten(1).bool()
    hidden = [block.mlp[0].out_features for block in model.blocks] if model.config.model_mask else None
    return run_per_sample(x, grid, tiles, hidden, lambda b: _sample(model, x[b : b + 1], scores[b], keep[b]))
