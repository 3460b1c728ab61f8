"""Shared helpers of the MDP tests: small synthetic latency tables and random BN statistics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from dance3d.mdp.graph import Structure
from dance3d.mdp.lut import LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.plan import width_grid


def randomize_bn(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so equality checks mean something."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


def synthetic_table(structure: Structure, *, step: int = 8, seed: int = 0, spec: dict | None = None) -> LatencyTable:
    """A table with increasing random costs over each layer's grid (no measuring)."""
    rng = np.random.default_rng(seed)
    grids = {g: width_grid(info.width, step=step, max_points=64) for g, info in structure.groups.items()}
    layers = {}
    for name, layer in structure.layers.items():
        widths = tuple(grids[a] for a in layer.axes)
        base = rng.uniform(0.1, 1.0)
        mesh = np.meshgrid(*[np.asarray(w, dtype=float) for w in widths], indexing="ij") if widths else []
        values = base * np.prod([m / m.max() for m in mesh], axis=0) if widths else np.asarray(base)
        layers[name] = LayerTable(layer.axes, widths, np.asarray(values), layer.block)
    table = LatencyTable(
        spec or {"name": "x", "num_classes": 8}, structure.clip_shape, LatencyRuntime(), layers, 0.0, grids
    )
    table.dense_latency_ms = table.dense_entries_ms + 0.5
    return table
