"""A small spatio-temporal Transformer: patch tokens per frame, divided space-time attention.

Each block attends over the patches of one frame (space), then over the frames of one patch
position (time), then applies an MLP. Positions use fixed sine-cosine codes built for the input's
size, so any H, W works (padded to a multiple of the patch size). A linear map over the time axis
turns ``t_in`` token frames into ``t_out``; a linear head turns tokens back into patches of the
change from the last input frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.models.forecast_backbones.common import check_inputs, pad_to_multiple, zero_init


def sincos_codes(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions -> (N, dim) sine-cosine codes."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / max(1, half))
    angles = positions.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class SelfAttention(nn.Module):
    """Multi-head self-attention on (N, L, D) through ``scaled_dot_product_attention``.

    Written out rather than ``nn.MultiheadAttention``, whose inference fast path is one fused op
    the MAC counter does not see.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor, *, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The heads' attention of packed queries, keys and values ``qkv`` (N, L, 3D), before the output
        projection: (N, L, D)."""
        batch, length, packed = qkv.shape
        dim = packed // 3
        q, k, v = qkv.reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (N, heads, L, D / heads)
        return out.transpose(1, 2).reshape(batch, length, dim)


class DividedBlock(nn.Module):
    def __init__(self, dim: int, heads: int, *, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm_space, self.norm_time, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.space = SelfAttention(dim, heads)
        self.time = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, N, D)."""
        batch, frames, tokens, dim = x.shape
        x = x + self.space(self.norm_space(x).reshape(batch * frames, tokens, dim)).reshape(batch, frames, tokens, dim)
        t = self.norm_time(x).transpose(1, 2).reshape(batch * tokens, frames, dim)
        x = x + self.time(t).reshape(batch, tokens, frames, dim).transpose(1, 2)
        return x + self.mlp(self.norm_mlp(x))


class SpatioTemporalTransformer(nn.Module):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W)."""

    def __init__(
        self, channels: int, *, t_in: int, t_out: int, patch: int = 4, dim: int = 48, depth: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        if min(channels, t_in, t_out, patch, dim, depth, heads) < 1 or dim % heads or dim % 4:
            raise ValueError("sizes must be >= 1, dim divisible by heads and by 4")
        self.channels, self.t_in, self.t_out, self.patch, self.dim = channels, t_in, t_out, patch, dim
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(DividedBlock(dim, heads) for _ in range(depth))
        self.to_future = nn.Linear(t_in, t_out)
        self.norm = nn.LayerNorm(dim)
        self.head = zero_init(nn.Linear(dim, channels * patch * patch))

    def position_embeddings(self, frames: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(frames, h * w, dim) fixed sin-cos codes of each token's frame and patch row and column."""
        quarter = self.dim // 4
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        space = torch.cat([sincos_codes(ys.flatten(), 2 * quarter), sincos_codes(xs.flatten(), 2 * quarter)], dim=1)
        time = sincos_codes(torch.arange(frames), self.dim)
        return (time[:, None] + space[None]).to(device)  # (T, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, t_in=self.t_in, channels=self.channels)
        batch, _, _, height, width = x.shape
        frames, _ = pad_to_multiple(x.flatten(0, 1), self.patch)
        tokens = self.embed(frames)  # (B*T, D, h, w)
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2).reshape(batch, self.t_in, h * w, self.dim)
        tokens = tokens + self.position_embeddings(self.t_in, h, w, x.device)
        for block in self.blocks:
            tokens = block(tokens)
        future = self.to_future(tokens.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, t_out, N, D)
        patches = self.head(self.norm(future))  # (B, t_out, N, C*p*p)
        p = self.patch
        patches = patches.reshape(batch, self.t_out, h, w, self.channels, p, p)
        delta = patches.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch, self.t_out, self.channels, h * p, w * p)
        return x[:, -1:] + delta[..., :height, :width]
