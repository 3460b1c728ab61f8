"""SimVP-style CNN: per-frame spatial encoder, a 2D translator over stacked frames, per-frame decoder.

The translator sees all ``t_in`` encoded frames as channels and emits ``t_out`` of them; its
blocks are ConvNeXt-like (depthwise 7x7, pointwise MLP). The decoder adds the encoder's
full-resolution features of the last input frame (skip) and predicts the change from the last
input frame.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dance3d.models.forecast_backbones.common import (
    check_inputs,
    conv_norm_act,
    pad_to_multiple,
    up_conv_norm_act,
    zero_init,
)


class TranslatorBlock(nn.Module):
    def __init__(self, channels: int, *, expansion: int = 2) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.GroupNorm(1, channels)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, channels * expansion, 1), nn.GELU(), nn.Conv2d(channels * expansion, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.spatial(x)))


class SimVP(nn.Module):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W); any H, W (padded to a multiple of 4 inside)."""

    def __init__(
        self,
        channels: int,
        *,
        t_in: int,
        t_out: int,
        hidden_spatial: int = 16,
        hidden_temporal: int = 64,
        translator_blocks: int = 3,
    ) -> None:
        super().__init__()
        if min(channels, t_in, t_out, hidden_spatial, hidden_temporal, translator_blocks) < 1:
            raise ValueError("channels, t_in, t_out, widths and translator_blocks must be >= 1")
        self.channels, self.t_in, self.t_out = channels, t_in, t_out
        hs = hidden_spatial
        self.stem = conv_norm_act(channels, hs // 2)
        self.encoder = nn.Sequential(conv_norm_act(hs // 2, hs, stride=2), conv_norm_act(hs, hs, stride=2))
        self.translator = nn.Sequential(
            nn.Conv2d(t_in * hs, hidden_temporal, 1),
            *[TranslatorBlock(hidden_temporal) for _ in range(translator_blocks)],
            nn.Conv2d(hidden_temporal, t_out * hs, 1),
        )
        self.decoder = nn.Sequential(up_conv_norm_act(hs, hs), up_conv_norm_act(hs, hs // 2))
        self.head = zero_init(nn.Conv2d(hs, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, t_in=self.t_in, channels=self.channels)
        batch = x.shape[0]
        frames, (height, width) = pad_to_multiple(x.flatten(0, 1), 4)
        skip = self.stem(frames)  # (B*t_in, hs/2, H, W)
        latent = self.encoder(skip)
        h, w = latent.shape[-2:]
        latent = self.translator(latent.reshape(batch, -1, h, w)).reshape(batch * self.t_out, -1, h, w)
        decoded = self.decoder(latent)
        last_skip = skip.reshape(batch, self.t_in, *skip.shape[1:])[:, -1:]
        last_skip = last_skip.expand(-1, self.t_out, -1, -1, -1).flatten(0, 1)
        delta = self.head(torch.cat([decoded, last_skip], dim=1))[..., :height, :width]
        return x[:, -1:] + delta.reshape(batch, self.t_out, self.channels, height, width)
