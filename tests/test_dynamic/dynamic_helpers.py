"""Helpers: small built-in models, a hand-set adaptive controller, partly static clips, a random train cache."""

from __future__ import annotations

import torch
from model_helpers import make_dense

from dance3d.dance.data import ClipCache
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model

CLIP = (8, 32, 32)


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


def random_train_clips(num_clips: int = 16) -> ClipCache:
    """``num_clips`` seeded random clips of ``CLIP`` with two alternating labels, as a training cache."""
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(num_clips, 3, *CLIP, generator=generator).half()
    return ClipCache(clips, torch.arange(num_clips) % 2, [{}] * num_clips)
