"""Small built-in 3D ResNets for CPU work: ``tiny`` and the even smaller test variants.

Each residual block is ``conv_a -> bn_a -> relu -> conv_b -> bn_b (+ shortcut) -> relu``; the
inner width (``conv_a`` outputs) is what channel pruning gates, so the residual stream stays dense.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dance3d.models.registry import register_model

Stride3d = tuple[int, int, int]


class ResBlock3d(nn.Module):
    """3x3x3 basic residual block with an explicit inner width."""

    def __init__(self, in_channels: int, inner_channels: int, out_channels: int, stride: Stride3d) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner_channels, 3, stride=stride, padding=1, bias=False)
        self.bn_a = nn.BatchNorm3d(inner_channels)
        self.conv_b = nn.Conv3d(inner_channels, out_channels, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm3d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels or stride != (1, 1, 1):
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The branch that pruning acts on (without the shortcut)."""
        return self.bn_b(self.conv_b(torch.relu(self.bn_a(self.conv_a(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.residual(x))


class TinyVideoResNet(nn.Module):
    """Stem conv, stages of residual blocks, global pool, linear head (logits)."""

    def __init__(
        self,
        num_classes: int,
        *,
        stem_channels: int = 16,
        stage_channels: tuple[int, ...] = (32, 64),
        blocks_per_stage: tuple[int, ...] = (2, 2),
        stage_strides: tuple[Stride3d, ...] = ((1, 2, 2), (2, 2, 2)),
        inner_multiplier: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not len(stage_channels) == len(blocks_per_stage) == len(stage_strides):
            raise ValueError("stage_channels, blocks_per_stage and stage_strides must have equal length")
        if not inner_multiplier > 0 or min(stem_channels, *stage_channels, *blocks_per_stage) < 1:
            raise ValueError("inner_multiplier must be > 0 and every channel and block count >= 1")
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem_channels, 3, stride=(1, 2, 2), padding=1, bias=False),
            nn.BatchNorm3d(stem_channels),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_channels = stem_channels
        for channels, count, stride in zip(stage_channels, blocks_per_stage, stage_strides, strict=True):
            inner = int(round(channels * inner_multiplier))
            for i in range(count):
                blocks.append(ResBlock3d(in_channels, inner, channels, stride if i == 0 else (1, 1, 1)))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(in_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.features(x)).flatten(1)))


@register_model(
    "tiny",
    family="builtin",
    default_clip=(16, 64, 64),
    description="3D ResNet, 4 blocks (32/64 wide), ~0.6 GMACs at 16x64x64; the CPU default",
)
def tiny(num_classes: int, **kwargs) -> TinyVideoResNet:
    return TinyVideoResNet(num_classes, **kwargs)


@register_model(
    "tiny-test",
    family="builtin",
    default_clip=(8, 32, 32),
    description="4-block 3D ResNet (8/16 wide) for fast tests",
)
def tiny_test(num_classes: int, **kwargs) -> TinyVideoResNet:
    kwargs = {"stem_channels": 8, "stage_channels": (8, 16), **kwargs}
    return TinyVideoResNet(num_classes, **kwargs)


@register_model(
    "tiny-test-deep",
    family="builtin",
    default_clip=(8, 32, 32),
    description="3-stage 3D ResNet (8/16/16 wide, 1 block each) for tests of deeper graphs",
)
def tiny_test_deep(num_classes: int, **kwargs) -> TinyVideoResNet:
    kwargs = {
        "stem_channels": 8,
        "stage_channels": (8, 16, 16),
        "blocks_per_stage": (1, 1, 1),
        "stage_strides": ((1, 1, 1), (2, 2, 2), (1, 2, 2)),
        **kwargs,
    }
    return TinyVideoResNet(num_classes, **kwargs)


@register_model(
    "tiny-deep",
    family="builtin",
    default_clip=(16, 32, 32),
    description="3D ResNet, 6 blocks (3 per stage, 32/64 wide): tiny with blocks to spare for block removal",
)
def tiny_deep(num_classes: int, **kwargs) -> TinyVideoResNet:
    kwargs = {"blocks_per_stage": (3, 3), **kwargs}
    return TinyVideoResNet(num_classes, **kwargs)
