"""Compact execution of a co-pruned Transformer: every sample runs its kept tokens only, the batch together.

A sample's kept positions (the same in every frame) index its patches. The batch's kept tokens are
rows of one tensor (T, R, D), sample after sample, ``R`` the sum of the samples' kept counts ``K_b``:

* row-wise layers (patch embedding, norms, the attention projections, the head) run on all rows at once;
* the time attention of a kept position over its frames is plain batched attention on (R, T, D);
* the space attention of a frame over its sample's ``K_b`` tokens: its projections on all rows, the
  attention itself sample by sample (in one call when every sample keeps as many, as at batch 1);
* the MLP runs sample by sample, with that sample's kept hidden channels sliced out of the weights
  (its channel decision is taken for the whole batch at once).

The head's patches are scattered back into a zero change map, so a dropped position forecasts the
last input frame; a sample with no kept token costs the mask generator alone. Outputs equal
:meth:`CoprunedSTFormer._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.decisions import Decisions
from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


@dataclass(frozen=True)
class KeptTokens:
    """Where the batch's kept tokens lie: row ``r`` is position ``positions[r]`` of sample ``samples[r]``, the rows
    sample after sample; ``computed`` are the samples with at least one kept position, ``counts`` their kept
    counts, and ``owner`` each row's index into ``computed``."""

    samples: torch.Tensor  # (R,) index into the batch
    positions: torch.Tensor  # (R,) index into the token grid
    computed: torch.Tensor  # (B',) samples with a kept position
    counts: list[int]  # (B',) kept positions per computed sample

    @classmethod
    def of(cls, keep: torch.Tensor) -> KeptTokens:
        """From the kept positions (B, N) bool."""
        samples, positions = keep.nonzero(as_tuple=True)
        per_sample = keep.sum(dim=1)
        computed = per_sample.nonzero().flatten()
        return cls(samples, positions, computed, per_sample[computed].tolist())

    @functools.cached_property
    def owner(self) -> torch.Tensor:
        """(R,) each row's index into ``computed``."""
        counts = torch.tensor(self.counts, device=self.samples.device)
        return torch.repeat_interleave(torch.arange(len(self.counts), device=self.samples.device), counts)

    @property
    def uniform(self) -> bool:
        """Every computed sample keeps as many positions: the space attention runs as one call."""
        return len(set(self.counts)) <= 1

    def flat(self, grid_size: int) -> torch.Tensor:
        """(R,) each row's index into the batch's tokens of one frame laid out (B * N)."""
        return self.samples * grid_size + self.positions


def _space_attention(attention: nn.Module, z: torch.Tensor, kept: KeptTokens) -> torch.Tensor:
    """``attention`` of each frame over its sample's kept tokens, for rows (T, R, D): the projections on all
    rows at once, the attention itself sample by sample (padding to the largest count would cost more: one
    sample's count can be ten times the median), in one call when every sample keeps as many."""
    frames, _, dim = z.shape
    qkv = attention.qkv(z)  # (T, R, 3D)
    if kept.uniform:
        groups = [qkv.reshape(-1, kept.counts[0], 3 * dim)]  # (T * B', K, 3D)
    else:
        groups = qkv.split(kept.counts, dim=1)  # (T, K_b, 3D) per sample
    outs = [attention.attend(group).reshape(frames, -1, dim) for group in groups]
    return attention.proj(outs[0] if len(outs) == 1 else torch.cat(outs, dim=1))


def _sum_per_sample(rows: torch.Tensor, kept: KeptTokens) -> torch.Tensor:
    """The sum of each computed sample's rows: (R, ...) -> (B', ...)."""
    if len(kept.counts) == 1:
        return rows.sum(0, keepdim=True)
    return rows.new_zeros(len(kept.counts), *rows.shape[1:]).index_add_(0, kept.owner, rows)


def _mlp(block: nn.Module, z: torch.Tensor, kept_channels: torch.Tensor | None, counts: list[int]) -> torch.Tensor:
    """The block's MLP on rows (T, R, D), each sample at its kept (B', hidden) channels (all when None)."""
    fc1, act, fc2 = block.mlp
    if kept_channels is None:
        return fc2(act(fc1(z)))
    outs = []
    for rows, channels in zip(z.split(counts, dim=1), kept_channels, strict=True):
        idx = channels.nonzero().flatten()
        hidden = act(F.linear(rows, fc1.weight[idx], fc1.bias[idx]))
        outs.append(F.linear(hidden, fc2.weight[:, idx], fc2.bias))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def token_compact_forward(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid
) -> tuple[torch.Tensor, Decisions]:
    """Forecasts of a batch of a ``CoprunedSTFormer``, each sample running only its kept tokens; and the masks."""
    bb = model.backbone
    p, t_in, t_out, batch = bb.patch, bb.t_in, bb.t_out, x.shape[0]
    tiles = model.decide_tiles(scores, grid, soft=False)
    kept = KeptTokens.of(position_mask(tiles, grid).flatten(1).bool())
    channels = None  # each block's kept channels (B, hidden); a sample computing nothing keeps none
    if model.config.model_mask:
        channels = [x.new_zeros(batch, block.mlp[0].out_features) for block in model.blocks]
    persistence = x[:, -1:].expand(-1, t_out, -1, -1, -1)
    if not kept.counts:  # nothing to compute in the whole batch
        return persistence.clone(), Decisions(grid, tiles, channels)
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), p)
    h, w = frames.shape[-2] // p, frames.shape[-1] // p
    flat = kept.flat(h * w)
    patches = F.unfold(frames, p, stride=p).unflatten(0, (batch, t_in))  # (B, T, C * p * p, N)
    patches = patches.permute(1, 0, 3, 2).reshape(t_in, batch * h * w, -1)[:, flat]  # (T, R, C * p * p)
    tokens = F.linear(patches, bb.embed.weight.flatten(1), bb.embed.bias)
    tokens = tokens + bb.position_embeddings(t_in, h, w, x.device)[:, kept.positions]
    weight = scores.flatten(1)[kept.samples, kept.positions]  # (R,): S at the kept positions
    totals = (t_in * _sum_per_sample(weight, kept)).clamp(min=1e-6)[:, None]  # (B', 1)
    for i, block in enumerate(model.blocks):
        tokens = tokens + _space_attention(block.space, block.norm_space(tokens), kept)
        tokens = tokens + block.time(block.norm_time(tokens).transpose(0, 1)).transpose(0, 1)  # R positions
        z = block.norm_mlp(tokens)
        kept_channels = None
        if channels is not None:
            pooled = _sum_per_sample((z * weight[:, None]).sum(0), kept) / totals  # S-weighted mean (B', D)
            kept_channels = model.channels_from_mean(pooled, block)
            channels[i][kept.computed] = kept_channels
        tokens = tokens + _mlp(block, z, kept_channels, kept.counts)
    future = bb.to_future(tokens.permute(1, 2, 0)).permute(2, 0, 1)  # (t_out, R, D)
    values = bb.head(bb.norm(future))  # (t_out, R, C * p * p)
    canvas = values.new_zeros(t_out, batch * h * w, values.shape[-1])
    canvas[:, flat] = values
    delta = canvas.reshape(t_out, batch, h, w, bb.channels, p, p).permute(1, 0, 4, 2, 5, 3, 6)
    delta = delta.reshape(batch, t_out, bb.channels, h * p, w * p)[..., :height, :width]
    return persistence + delta, Decisions(grid, tiles, channels)
