"""Per-sample MACs of a co-pruned spatio-temporal Transformer, from how many tokens and channels it keeps.

With ``K`` of the ``N`` token positions kept (the same ones in every frame) a sample computes, per
frame, the patch embedding and head of ``K`` tokens, and in each block the q/k/v and output
projections, the MLP (at its kept hidden channels) and the time attention of ``K`` tokens: all
linear in ``K``; the space attention's ``QK^T`` and ``AV`` cost ``2 K^2 D`` per frame, quadratic
in ``K``. The formula is exact for what compact execution runs (a test counts a compact forward
with :func:`profiling.count_macs`) and, with every token kept, equals the dense backbone's counted MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dance3d.models.forecast_backbones import SpatioTemporalTransformer


@dataclass(frozen=True)
class TokenMacs:
    """A sample's MACs as ``K * (per_token + sum_b mlp_per_token[b] * kept channel share) + K^2 * per_token_pair``."""

    tokens: int  # N: token positions per frame
    per_token: int  # everything linear in K but the MLPs
    mlp_per_token: tuple[int, ...]  # each block's MLP at full width, per kept position
    per_token_pair: int  # the space attention, per pair of kept positions

    @property
    def dense(self) -> int:
        return self.tokens * (self.per_token + sum(self.mlp_per_token)) + self.tokens**2 * self.per_token_pair

    def macs(self, kept_tokens: torch.Tensor, channel_fractions: torch.Tensor | None) -> torch.Tensor:
        """(B,) MACs for ``kept_tokens`` (B,) positions and each block's kept hidden share (B, blocks) or None (all)."""
        mlp = kept_tokens.new_tensor(self.mlp_per_token)
        widths = mlp.sum() if channel_fractions is None else (channel_fractions * mlp).sum(dim=1)
        return kept_tokens * (self.per_token + widths) + kept_tokens**2 * self.per_token_pair


def token_macs(backbone: SpatioTemporalTransformer, *, height: int, width: int) -> TokenMacs:
    """The :class:`TokenMacs` of ``backbone`` on (padded) inputs of ``height x width`` pixels."""
    p, dim, t_in, t_out = backbone.patch, backbone.dim, backbone.t_in, backbone.t_out
    tokens = -(-height // p) * -(-width // p)
    patch_values = backbone.channels * p * p
    per_token = t_in * patch_values * dim + dim * t_in * t_out + t_out * dim * patch_values  # embed, to_future, head
    mlp = []
    for block in backbone.blocks:
        per_token += 2 * t_in * 4 * dim * dim  # q/k/v and output projections, space and time
        per_token += 2 * t_in * t_in * dim  # time attention: QK^T and AV over the frames of a position
        hidden = block.mlp[0].out_features
        mlp.append(2 * t_in * dim * hidden)
    pair = 2 * t_in * dim * len(backbone.blocks)  # space attention: QK^T and AV, per frame and block
    return TokenMacs(tokens, per_token, tuple(mlp), pair)
