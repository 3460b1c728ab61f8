"""Measured budget correction: solve, time the solution on this device, tighten the budget, solve again.

An optimiser picks the structures whose table entries are most optimistic, so its own solution
tends to run slower than predicted, even when the latency model predicts random pruned models well
(the benchmark saw -1% to -8% on random models, -6% to -17% on the solver's). :func:`solve_measured`
closes the loop on the device: each round solves under an effective budget, measures the solution,
and stops once the measurement is within ``tolerance_pct`` of the user's budget (or below it);
otherwise the effective budget shrinks by ``budget / measured`` and the next round solves again.
The latency model is left as it is, so every round's prediction error is an honest held-out one.
A budget tightened below the fastest structure on the width grid is raised to it, and the rounds
stop once that structure has been measured (a device far slower than its table, or a table timed in
a quiet spell and a solution timed in a busy one, gets the fastest structure instead of an error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dance3d.mdp.graph import Structure
from dance3d.mdp.importance import Importance
from dance3d.mdp.lut import LatencyTable, error_pct
from dance3d.mdp.plan import PrunePlan
from dance3d.mdp.problem import build_problem
from dance3d.mdp.solver import Solution, SolverConfig, minimum_latency_ms, solve


@dataclass
class MeasuredSolution:
    solution: Solution  # of the last round
    measured_ms: float
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def prediction_error_pct(self) -> float:
        return error_pct(self.solution.predicted_ms, self.measured_ms)


def solve_measured(
    structure: Structure,
    table: LatencyTable,
    importance: Importance,
    *,
    budget_ms: float,
    measure: Callable[[PrunePlan], float],
    max_rounds: int = 3,
    tolerance_pct: float = 2.0,
    solver: SolverConfig | None = None,
    width_step: int = 0,
    remove_blocks: bool = True,
) -> MeasuredSolution:
    """Up to ``max_rounds`` rounds of solve -> ``measure(plan)`` (ms) -> tighten the budget (see module doc)."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    rounds: list[dict[str, Any]] = []
    effective_ms = budget_ms
    floor_ms: float | None = None  # the fastest structure's prediction, computed once a budget is tightened
    config = solver or SolverConfig(remove_blocks=remove_blocks)
    while True:
        problem = build_problem(
            structure, table, importance, budget_ms=effective_ms, width_step=width_step, remove_blocks=remove_blocks
        )
        solution = solve(problem, config)
        measured = measure(solution.plan)
        rounds.append(
            {"round": len(rounds) + 1, "effective_budget_ms": effective_ms, "predicted_ms": solution.predicted_ms,
             "measured_ms": measured, "prediction_error_pct": error_pct(solution.predicted_ms, measured),
             "objective": solution.objective}
        )  # fmt: skip
        if measured <= budget_ms * (1.0 + tolerance_pct / 100.0) or len(rounds) == max_rounds:
            return MeasuredSolution(solution, measured, rounds)
        if floor_ms is None:
            floor_ms = minimum_latency_ms(problem, config) * (1.0 + 1e-9)
        if effective_ms <= floor_ms:  # the fastest structure on the grid is measured: nothing tighter to solve
            return MeasuredSolution(solution, measured, rounds)
        effective_ms = max(effective_ms * budget_ms / measured, floor_ms)
