"""Helpers: small built-in models, a hand-set adaptive controller, partly static clips."""

from __future__ import annotations

import torch

from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model
from dance3d.models import create_model

CLIP = (8, 32, 32)


def make_dense(name: str = "tiny-test", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=8).eval()
    # non-trivial BN statistics so masked and unmasked outputs differ clearly
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def frame_sensitive(model: DynamicModel) -> DynamicModel:
    """Hand-set controller: keep frames with frame-difference energy (log) above -5, i.e. moving ones."""
    with torch.no_grad():
        for weights, bias in zip(model.controller.frame_weights, model.controller.frame_bias, strict=True):
            weights.weight.zero_()
            weights.weight[0, 2] = 1.0  # log frame-difference energy
            weights.bias.fill_(5.0)
            bias.weight.zero_()
            bias.bias.zero_()
    return model


def dynamic_tiny_test(name: str = "tiny-test") -> DynamicModel:
    return convert_model(make_dense(name), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4)).eval()


def partly_static_clip(seed: int, static_from: int) -> torch.Tensor:
    """A random clip whose frames from ``static_from`` on repeat that frame (no motion)."""
    generator = torch.Generator().manual_seed(seed)
    clip = torch.rand(3, *CLIP, generator=generator)
    clip[:, static_from:] = clip[:, static_from : static_from + 1]
    return clip
