"""A cost table with entries proportional to the kept work, for tests that need a table but no timing."""

from __future__ import annotations

import itertools

import numpy as np

from dance3d.dance.device_cost import BlockCosts, BlockCostTable, gate_signature
from dance3d.dynamic import DynamicModel
from dance3d.mdp.lut import LatencyRuntime


def proportional_table(model: DynamicModel, *, ms_per_block: float = 1.0, overhead_ms: float = 0.5) -> BlockCostTable:
    """Each block's entry: ``ms_per_block x`` kept frames x channels x tiles fractions, plus 5% fixed; joules
    = 2 x ms / 1000."""
    blocks = []
    for levels, spec in zip(model.levels, model.gate_specs, strict=True):
        grids = (levels.frames, levels.channels, levels.tiles)
        ms = np.zeros(tuple(len(g) for g in grids))
        for index in itertools.product(*(range(len(g)) for g in grids)):
            f, c, t = (g[i] for g, i in zip(grids, index, strict=True))
            kept = f / spec.num_frames * c / spec.num_channels * t / spec.num_tiles
            ms[index] = ms_per_block * (0.05 + 0.95 * kept)
        blocks.append(BlockCosts(grids, ms, 2e-3 * ms))
    dense_ms = ms_per_block * len(blocks) + overhead_ms
    return BlockCostTable(
        model={"name": "tiny-test", "num_classes": 8},
        gates=gate_signature(model),
        clip_shape=(3, *model.clip_shape),
        runtime=LatencyRuntime(),
        blocks=blocks,
        dense_ms=dense_ms,
        controller_ms=0.1,
        dense_j=2e-3 * dense_ms,
        controller_j=2e-4,
        energy_status="ok",
        energy_meter="synthetic",
    )
