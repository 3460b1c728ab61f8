"""Coupled masks from one importance map ``S``: the data mask over tiles and the model mask over channels.

Data mask: a tile is computed when its mean ``S`` exceeds ``data_threshold``. Model mask: for a
translator block, the ``S``-weighted mean of its normalised input over the kept positions is pushed
through the block's expansion filters (the filters are 1x1, so this is the ``S``-weighted mean of
each filter's response); a hidden channel's importance is its GELU response magnitude times the
norm of the weights that read it, divided by the sample's largest, and the channel is computed when
that exceeds ``channel_threshold``. Both masks read the same ``S``, so they cannot disagree: a
region ``S`` calls calm is skipped and does not vote for any channel.

In training the hard 0/1 masks pass the gradient of ``sigmoid((value - threshold) / temperature)``
(straight-through, :func:`controllers.ste_mask`); at inference they are plain 0/1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from controllers import ste_mask
from dance3d.copruning.config import CopruneConfig


def threshold_mask(values: torch.Tensor, threshold: float, *, temperature: float, soft: bool) -> torch.Tensor:
    """0/1 float mask ``values > threshold``; with ``soft`` it carries the straight-through gradient."""
    hard = (values > threshold).to(values.dtype)
    return ste_mask(hard, values - threshold, temperature=temperature) if soft else hard


def data_mask(tile_scores: torch.Tensor, config: CopruneConfig, *, soft: bool) -> torch.Tensor:
    """(B, n_tiles) kept tiles from each tile's mean ``S``; every tile when the data mask is off."""
    if not config.data_mask:
        return torch.ones_like(tile_scores).detach()
    return threshold_mask(tile_scores, config.data_threshold, temperature=config.temperature, soft=soft)


def weighted_mean(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_p weight_p z_p / sum_p weight_p`` over positions: (B, C, h, w), (B, 1, h, w) -> (B, C)."""
    return (z * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp(min=1e-6)


def channel_importance(pooled: torch.Tensor, expand: nn.Conv2d, project: nn.Conv2d) -> torch.Tensor:
    """(B, hidden) importance in [0, 1] of a block's hidden channels from the ``S``-weighted mean input."""
    response = F.gelu(F.linear(pooled, expand.weight.flatten(1), expand.bias))
    return relative_to_largest(response.abs() * project.weight.flatten(1).norm(dim=0))


def relative_to_largest(importance: torch.Tensor) -> torch.Tensor:
    """(B, hidden) importance divided by each sample's largest, so it lies in [0, 1]."""
    return importance / importance.amax(dim=1, keepdim=True).clamp(min=1e-12)


def model_mask(importance: torch.Tensor, config: CopruneConfig, *, soft: bool) -> torch.Tensor:
    """(B, hidden) kept channels of one block."""
    return threshold_mask(importance, config.channel_threshold, temperature=config.temperature, soft=soft)
