"""Models shared by several test packages."""

from __future__ import annotations

import torch

from dance3d.models import create_model


def make_dense(name: str = "tiny-test", seed: int = 0) -> torch.nn.Module:
    """A random zoo model (8 classes, eval mode) with spread-out BN statistics, so that masking,
    pruning or skipping units changes its outputs clearly."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=8).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model
