"""Assemble the MILP instance from a model's structure, its latency table and its importance scores."""

from __future__ import annotations

from dance3d.mdp.graph import Structure
from dance3d.mdp.importance import Importance
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.plan import width_grid
from dance3d.mdp.solver import MdpProblem


def solver_grid(table: LatencyTable, group: str, width_step: int) -> tuple[int, ...]:
    """The widths the solver may choose for ``group``: the table's grid, or multiples of ``width_step`` inside it."""
    grid = table.group_grids[group]
    if not width_step:
        return grid
    finer = width_grid(grid[-1], step=width_step, max_points=grid[-1])
    return tuple(w for w in finer if w >= grid[0])


def build_problem(
    structure: Structure,
    table: LatencyTable,
    importance: Importance,
    *,
    budget_ms: float,
    width_step: int = 0,
    remove_blocks: bool = True,
) -> MdpProblem:
    """Choices (with width 0 for groups of removable blocks), normalised values and the table."""
    total = sum(float(s.sum()) for s in importance.channels.values()) + sum(importance.blocks.values())
    total = total if total > 0 else 1.0
    in_block = {g for b in structure.blocks.values() for g in b.groups} if remove_blocks else set()
    choices = {}
    values = {}
    for g in structure.groups:
        widths = solver_grid(table, g, width_step)
        choices[g] = (0, *widths) if g in in_block else widths
        values[g] = tuple(importance.kept_value(g, w) / total for w in choices[g])
    blocks = structure.blocks if remove_blocks else {}
    return MdpProblem(
        choices=choices,
        values=values,
        block_groups={name: b.groups for name, b in blocks.items()},
        block_values={name: importance.blocks[name] / total for name in blocks},
        table=table,
        budget_ms=budget_ms,
    )
