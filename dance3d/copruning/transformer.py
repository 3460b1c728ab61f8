"""The co-pruned spatio-temporal Transformer: pruned tokens are dropped, not masked.

The backbone (:class:`~dance3d.models.forecast_backbones.SpatioTemporalTransformer`, patch 4) has
one token per 4 x 4 patch per frame: the same 1/4 grid on which the mask generator gives ``S``.
Per sample, ``S`` decides:

* **the data mask**: tiles of ``tile_size`` pixels (``tile_size / 4`` tokens a side) whose mean
  ``S`` exceeds ``data_threshold``; the kept positions are the same in every frame. Kept tokens
  attend only to kept tokens (the space attention over a frame's kept tokens; the time attention
  over the frames of one kept position). A pruned position's forecast is **persistence**: the
  backbone predicts the change from the last frame, and the change there is not computed.
* **the model mask**: each block's MLP hidden channels, from the ``S``-weighted mean of the block's
  normalised kept tokens pushed through its first linear layer
  (:func:`~dance3d.copruning.masks.channel_importance`); regions ``S`` calls calm cast no vote.

``simulate`` runs dense tensors with the pruned tokens' keys masked out of the space attention
and the pruned positions' outputs zeroed (soft straight-through masks in ``train()`` mode);
``compact`` (:mod:`dance3d.copruning.token_compact`) gathers the batch's kept tokens and runs the
blocks on them alone, so attention and MLPs run on fewer tokens. With every token and
channel kept, ``simulate`` is the dense backbone exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dance3d.copruning.accounting import dense_layer_macs
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.generator import LATENT_STRIDE
from dance3d.copruning.masks import channel_importance, model_mask
from dance3d.copruning.tiles import position_mask
from dance3d.copruning.token_accounting import TokenMacs, token_macs
from dance3d.copruning.token_compact import token_compact_forward
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import SpatioTemporalTransformer
from dance3d.models.forecast_backbones.common import pad_to_multiple


def token_weighted_mean(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_{t,n} weight_n z_tn / (T sum_n weight_n)``: (B, T, N, D), (B, N) -> (B, D)."""
    total = (z * weight[:, None, :, None]).sum(dim=(1, 2))
    return total / (z.shape[1] * weight.sum(dim=1, keepdim=True)).clamp(min=1e-6)


DROPPED_KEY_FLOOR = 1e-30
"""``keep`` is floored here before its log: a dropped key's logit falls by ~69, a weight of ~1e-30."""


def masked_attention(attention: nn.Module, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``attention`` (a :class:`SelfAttention`) on (M, L, D) with the keys weighted by ``keep`` (M, L).

    The softmax weights are ``keep_j exp(s_ij) / sum_j keep_j exp(s_ij)``, through the fused
    attention with the additive mask ``log(keep)`` (floored at ``DROPPED_KEY_FLOOR``): with a 0/1
    ``keep`` a dropped token's key gets a weight of ~1e-30, nothing in float32; a straight-through
    ``keep`` passes the gradient of its kept keys.
    """
    qkv = attention.qkv(x)
    bias = keep.clamp(min=DROPPED_KEY_FLOOR).log()[:, None, None, :].to(qkv.dtype)
    return attention.proj(attention.attend(qkv, attn_mask=bias))


class CoprunedSTFormer(CoprunedForecaster):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W), dropping calm tokens and unneeded MLP channels per sample
    (the records a forward leaves: :class:`~dance3d.copruning.base.CoprunedForecaster`)."""

    def __init__(self, backbone: SpatioTemporalTransformer, config: CopruneConfig) -> None:
        if not isinstance(backbone, SpatioTemporalTransformer):
            raise ConfigError(f"CoprunedSTFormer wraps a SpatioTemporalTransformer, got {type(backbone).__name__}")
        if backbone.patch != LATENT_STRIDE:
            raise ConfigError(
                f"co-pruning a Transformer needs patch size {LATENT_STRIDE} (its tokens on the importance map's "
                f"1/{LATENT_STRIDE} grid), got patch {backbone.patch}"
            )
        super().__init__(backbone, config)
        self._costs: dict[tuple[int, ...], tuple[TokenMacs, int, int]] = {}

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.backbone.blocks)

    def decide_channels(
        self, z: torch.Tensor, weight: torch.Tensor, block: nn.Module, *, soft: bool
    ) -> torch.Tensor | None:
        """A block's MLP hidden-channel mask (B, hidden) from its normed tokens ``z`` (B, T, N, D) and
        the ``S``-weights (B, N)."""
        if not self.config.model_mask:
            return None
        return self.channels_from_mean(token_weighted_mean(z, weight), block, soft=soft)

    def channels_from_mean(self, pooled: torch.Tensor, block: nn.Module, *, soft: bool = False) -> torch.Tensor:
        """A block's MLP hidden-channel mask (B, hidden) from the ``S``-weighted mean of its normed tokens (B, D)."""
        return model_mask(channel_importance(pooled, block.mlp[0], block.mlp[2]), self.config, soft=soft)

    def _simulate(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        bb, soft = self.backbone, self.training
        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        tiles = self.decide_tiles(scores, grid, soft=soft)
        everything = bool(tiles.all()) and not tiles.requires_grad  # no token dropped, none to learn
        keep = None if everything else position_mask(tiles, grid).flatten(1)  # (B, N)
        frames, _ = pad_to_multiple(x.flatten(0, 1), bb.patch)
        tokens = bb.embed(frames)
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2).reshape(batch, bb.t_in, h * w, bb.dim)
        tokens = tokens + bb.position_embeddings(bb.t_in, h, w, x.device)
        weight = scores.flatten(1) if keep is None else scores.flatten(1) * keep
        channels: list[torch.Tensor] = []
        for block in self.blocks:
            tokens = self._block(block, tokens, keep, weight, channels, soft=soft)
        future = bb.to_future(tokens.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, t_out, N, D)
        patches = bb.head(bb.norm(future))
        if keep is not None:
            patches = patches * keep[:, None, :, None]
        p = bb.patch
        patches = patches.reshape(batch, bb.t_out, h, w, bb.channels, p, p)
        delta = patches.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch, bb.t_out, bb.channels, h * p, w * p)
        out = x[:, -1:] + delta[..., :height, :width]
        return out, Decisions(grid, tiles, channels if self.config.model_mask else None)

    def _block(
        self,
        block: nn.Module,
        x: torch.Tensor,
        keep: torch.Tensor | None,
        weight: torch.Tensor,
        channels: list[torch.Tensor],
        *,
        soft: bool,
    ) -> torch.Tensor:
        """One divided block on (B, T, N, D) with the dropped tokens out of the space attention's keys."""
        batch, frames, tokens, dim = x.shape
        space_in = block.norm_space(x).reshape(batch * frames, tokens, dim)
        if keep is None:
            space = block.space(space_in)
        else:
            space = masked_attention(block.space, space_in, keep.repeat_interleave(frames, dim=0))
        x = x + space.reshape(batch, frames, tokens, dim)
        t = block.norm_time(x).transpose(1, 2).reshape(batch * tokens, frames, dim)
        x = x + block.time(t).reshape(batch, tokens, frames, dim).transpose(1, 2)
        z = block.norm_mlp(x)
        fc1, act, fc2 = block.mlp
        hidden = act(fc1(z))
        kept = self.decide_channels(z, weight, block, soft=soft)
        if kept is not None:
            hidden = hidden * kept[:, None, None, :]
            channels.append(kept)
        return x + fc2(hidden)

    def _compact(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        return token_compact_forward(self, x, scores, grid)

    def costs(self, x: torch.Tensor) -> tuple[TokenMacs, int, int]:
        """(the token MAC model, the dense backbone's counted MACs, the generator's MACs) per sample like ``x``."""
        key = tuple(x.shape[1:])
        if key not in self._costs:
            sample = x[:1].detach()
            height, width = (-(-size // LATENT_STRIDE) * LATENT_STRIDE for size in x.shape[-2:])
            model = token_macs(self.backbone, height=height, width=width)
            counted = dense_layer_macs(self.backbone, sample).total
            self._costs[key] = (model, counted, dense_layer_macs(self.generator, sample).total)
        return self._costs[key]

    def dense_total_macs(self, x: torch.Tensor) -> int:
        return self.costs(x)[1]

    def channel_decision_macs(self) -> int:
        """MACs of the channel-importance responses (each block's first MLP layer on one pooled vector)."""
        if not self.config.model_mask:
            return 0
        return sum(b.mlp[0].in_features * b.mlp[0].out_features for b in self.blocks)

    def mac_fraction_at(self, x: torch.Tensor, position_fraction: float) -> float:
        """The MAC fraction of keeping ``position_fraction`` of the tokens and every channel (no generator)."""
        model, dense, _ = self.costs(x)
        kept = torch.tensor([position_fraction * model.tokens], dtype=torch.float64)
        return float(model.macs(kept, None)) / dense

    def _account(self, x: torch.Tensor, decisions: Decisions) -> None:
        model, dense, generator_macs = self.costs(x)
        kept = decisions.position_fraction() * model.tokens
        macs = model.macs(kept, decisions.channel_fractions()) + generator_macs
        macs = macs + torch.where(kept > 0, float(self.channel_decision_macs()), 0.0)
        self.last_decisions, self.last_macs = decisions, macs
        self.last_mac_fraction = macs / dense


__all__ = ["DROPPED_KEY_FLOOR", "CoprunedSTFormer", "masked_attention", "token_weighted_mean"]
