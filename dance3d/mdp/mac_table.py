"""A cost table of counted MACs instead of timed latency: MDP's MILP at a MAC budget.

Each entry of a :class:`~dance3d.mdp.lut.LatencyTable` normally holds a layer's measured latency
over its width grid; here it holds the layer's MACs (in millions, counted by the profiling layer on
the same unit the latency table would time), so the exact solver picks channels and blocks under a
MAC budget. Static baselines matched to another model's MACs use it (e.g. the DANCE comparison on
untrimmed clips). The table's ``ms`` fields then mean millions of MACs; ``env["cost"]`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import taylor_importance
from dance3d.mdp.lut import LatencyPredictor, LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.lut_measure import TableGrid, _layer_points, layer_unit
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, width_grid
from dance3d.mdp.problem import build_problem
from dance3d.mdp.solver import SolverConfig, solve
from profiling.macs import count_macs

MAC_COST = "MACs (millions), counted, not timed"


def _unit_mmacs(unit: nn.Module, shape: tuple[int, ...]) -> float:
    return count_macs(unit, torch.zeros(*shape)).macs / 1e6


def build_mac_table(
    model: nn.Module, model_spec: dict[str, Any], clip_shape: tuple[int, int, int, int], *, grid: TableGrid
) -> LatencyTable:
    """Every prunable layer's MACs (millions, batch 1) over its width grid, and the dense model's."""
    structure = extract_structure(model, clip_shape)
    grids = {
        g: width_grid(info.width, step=grid.step, max_points=grid.max_points) for g, info in structure.groups.items()
    }
    gm = structure.graph_module
    layers: dict[str, LayerTable] = {}
    for layer in structure.layers.values():
        values = np.zeros(tuple(len(grids[a]) for a in layer.axes))
        for index, cin, cout in _layer_points(structure, layer, grids):
            values[index] = _unit_mmacs(*layer_unit(gm, layer, cin, cout))
        layers[layer.name] = LayerTable(layer.axes, tuple(grids[a] for a in layer.axes), values, layer.block)
    dense_mmacs = count_macs(model.eval(), torch.zeros(1, *clip_shape)).macs / 1e6
    table = LatencyTable(model_spec, clip_shape, LatencyRuntime(), layers, dense_mmacs, grids)
    table.predictor = LatencyPredictor("entries")  # MACs add up: no overhead, no scale
    table.env = {"cost": MAC_COST}
    return table


@dataclass
class MacPruned:
    model: nn.Module  # the smaller model (fx), not fine-tuned
    plan: PrunePlan
    mac_fraction: float  # its counted MACs over the dense model's
    predicted_mac_fraction: float  # what the table predicted (equal, up to BN-free rounding)


def prune_to_macs(
    dense: nn.Module,
    model_spec: dict[str, Any],
    clip_shape: tuple[int, int, int, int],
    mac_fraction: float,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    grid: TableGrid | None = None,
    remove_blocks: bool = True,
    solver: SolverConfig | None = None,
) -> MacPruned:
    """MDP's structure (Taylor importance over ``batches``, exact MILP over channels and blocks) at
    ``mac_fraction`` of the dense model's counted MACs, materialised."""
    structure = extract_structure(dense, clip_shape)
    table = build_mac_table(dense, model_spec, clip_shape, grid=grid or TableGrid())
    importance = taylor_importance(structure, batches, progress=False)
    budget = mac_fraction * table.dense_latency_ms
    problem = build_problem(structure, table, importance, budget_ms=budget, remove_blocks=remove_blocks)
    solution = solve(problem, solver or SolverConfig())
    pruned = materialize(structure, solution.plan, keep=importance.keep_indices(solution.plan.widths))
    counted = count_macs(pruned.eval(), torch.zeros(1, *clip_shape)).macs / 1e6
    return MacPruned(
        pruned, solution.plan, counted / table.dense_latency_ms, solution.predicted_ms / table.dense_latency_ms
    )
