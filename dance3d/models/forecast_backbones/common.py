"""Pieces every forecasting backbone shares: input checks, padding, the persistence residual."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.errors import DataError


def check_inputs(x: torch.Tensor, *, t_in: int, channels: int) -> None:
    """``x`` must be (B, t_in, channels, H, W) with finite values."""
    if x.ndim != 5 or x.shape[1] != t_in or x.shape[2] != channels:
        raise DataError(f"forecaster expects inputs of shape (batch, {t_in}, {channels}, H, W), got {tuple(x.shape)}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the last two dims of (N, C, H, W) up to multiples of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (height, width)


def conv_norm_act(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    groups = 4 if out_channels % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
    )


def up_conv_norm_act(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         conv_norm_act(in_channels, out_channels))  # fmt: skip


def zero_init(module: nn.Module) -> nn.Module:
    """Zero the last layer so a fresh forecaster starts as persistence (last frame repeated)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module
