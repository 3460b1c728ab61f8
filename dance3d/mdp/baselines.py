"""Static pruning baselines for MDP at a latency target, on MDP's own latency table.

* **Uniform width scaling**: every channel group at the same fraction of its width (snapped to the
  table's grid), channels chosen by importance.
* **Magnitude pruning**: channels chosen by the L1 norm of the filters producing them
  (:func:`~dance3d.mdp.importance.magnitude_importance`); in-block (inner) groups shrink first with
  the residual stream dense, then, inner groups at their narrowest, the rest shrink too.
* **Greedy latency-aware pruning** (HALP-style): from the dense model, repeatedly take the step down
  one group's width grid that loses the least importance per millisecond of predicted latency it
  saves, until the prediction meets the target. It uses the same table and importance scores as
  MDP's MILP, so the two differ only in how they search; unlike MDP it never removes a block.

Latency matching: :func:`match_predicted` picks, from a list of plans, the one predicted closest to
the target without exceeding it; :func:`match_measured` goes on from there to the widest plan that
*measures* within the target on the device (narrower while it measures over, wider while they fit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from dance3d.errors import ConfigError
from dance3d.mdp.graph import Structure
from dance3d.mdp.importance import Importance
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.plan import PrunePlan, full_plan
from dance3d.mdp.problem import solver_grid

FRACTIONS = tuple(float(f) for f in np.arange(1.0, 0.04, -0.05))  # widest first
TOLERANCE = 1.02  # a measured latency this much over the target still matches it (timing noise)


def snap(grid: Sequence[int], width: float) -> int:
    """The grid width nearest ``width``."""
    return min(grid, key=lambda w: abs(w - width))


def scaled_plan(structure: Structure, table: LatencyTable, *, inner: float, other: float) -> PrunePlan:
    """In-block groups at ``inner`` of their width, the others at ``other``, snapped to the table's grid."""
    return PrunePlan(
        {
            g: snap(table.group_grids[g], (inner if info.block else other) * info.width)
            for g, info in structure.groups.items()
        }
    )


def uniform_plans(structure: Structure, table: LatencyTable, fractions: Sequence[float] = FRACTIONS) -> list[PrunePlan]:
    """Every group at the same fraction of its width, widest first."""
    return [scaled_plan(structure, table, inner=f, other=f) for f in fractions]


def magnitude_plans(
    structure: Structure, table: LatencyTable, fractions: Sequence[float] = FRACTIONS
) -> list[PrunePlan]:
    """Inner (in-block) groups shrink first, the rest dense; then, inner groups at their narrowest, the rest shrink.

    The second half lets the baseline reach budgets that inner channels alone cannot.
    """
    first = [scaled_plan(structure, table, inner=f, other=1.0) for f in fractions]
    return first + [scaled_plan(structure, table, inner=fractions[-1], other=f) for f in fractions[1:]]


def match_predicted(plans: Sequence[PrunePlan], table: LatencyTable, *, budget_ms: float) -> PrunePlan:
    """The plan whose predicted latency is closest to ``budget_ms`` without exceeding it (the first on ties)."""
    predicted = [table.predict_ms(p) for p in plans]
    fitting = [i for i, ms in enumerate(predicted) if ms <= budget_ms]
    if not fitting:
        raise ConfigError(f"no plan is predicted within {budget_ms:.3f} ms (the fastest: {min(predicted):.3f} ms)")
    return plans[max(fitting, key=lambda i: (predicted[i], -i))]


def match_measured(
    plans: Sequence[PrunePlan],
    table: LatencyTable,
    *,
    budget_ms: float,
    measure: Callable[[PrunePlan], float],
    tolerance: float = TOLERANCE,
) -> tuple[PrunePlan, float]:
    """The widest of ``plans`` (widest first) that measures within ``budget_ms x tolerance``: (plan, measured ms).

    The search starts at :func:`match_predicted`'s plan (the fastest predicted when none fits). While it measures
    over, it walks to narrower plans; when it measures within, it walks to wider plans while they measure within
    too, so a table that over-predicts this device does not leave the plan faster than the budget. When none
    measures within, the last one measured.
    """
    try:
        index = plans.index(match_predicted(plans, table, budget_ms=budget_ms))
    except ConfigError:
        index = min(range(len(plans)), key=lambda i: table.predict_ms(plans[i]))
    limit = budget_ms * tolerance
    measured = measure(plans[index])
    if measured <= limit:
        while (wider := next_wider(plans, plans[index])) is not None:
            wider_ms = measure(wider)
            if wider_ms > limit:
                break
            index, measured = plans.index(wider), wider_ms
        return plans[index], measured
    while index + 1 < len(plans) and measured > limit:
        index += 1
        measured = measure(plans[index])
    return plans[index], measured


def next_wider(plans: Sequence[PrunePlan], plan: PrunePlan) -> PrunePlan | None:
    """The plan just before ``plan`` in ``plans`` (widest first) that differs from it; None at the widest."""
    index = plans.index(plan)
    return next((plans[i] for i in range(index - 1, -1, -1) if plans[i] != plan), None)


@dataclass(frozen=True)
class GreedyStep:
    """One step of the greedy pruner: ``group`` from ``width_from`` down to ``width_to`` channels."""

    group: str
    width_from: int
    width_to: int
    importance_lost: float  # the importance of the channels the step removes
    saved_ms: float  # predicted latency saved
    predicted_ms: float  # predicted latency after the step
    plan: PrunePlan  # the plan after the step

    @property
    def importance_per_ms(self) -> float:
        return self.importance_lost / self.saved_ms


@dataclass
class GreedyResult:
    """The greedy pruner's plan at the target and every step that led to it."""

    plan: PrunePlan
    predicted_ms: float
    steps: list[GreedyStep] = field(default_factory=list)


def greedy_steps(
    structure: Structure, table: LatencyTable, importance: Importance, *, width_step: int = 0
) -> Iterator[GreedyStep]:
    """The greedy pruner's steps from the dense model, each the least importance lost per ms saved, until no step
    saves predicted time (every group at its narrowest, or only steps the table says cost time).

    The widths each group may take are MDP's (:func:`dance3d.mdp.problem.solver_grid`), without block removal.
    """
    grids = {g: solver_grid(table, g, width_step) for g in structure.groups}
    widths = dict(full_plan(structure).widths)
    predicted = table.predict_ms(PrunePlan(widths))
    while True:
        best: GreedyStep | None = None
        for group, grid in grids.items():
            index = grid.index(widths[group])
            if index == 0:
                continue
            plan = PrunePlan({**widths, group: grid[index - 1]})
            after = table.predict_ms(plan)
            saved = predicted - after
            if saved <= 0:
                continue
            lost = importance.kept_value(group, widths[group]) - importance.kept_value(group, grid[index - 1])
            step = GreedyStep(group, widths[group], grid[index - 1], lost, saved, after, plan)
            if best is None or step.importance_per_ms < best.importance_per_ms:
                best = step
        if best is None:
            return
        yield best
        widths, predicted = dict(best.plan.widths), best.predicted_ms


def greedy_latency_pruning(
    structure: Structure, table: LatencyTable, importance: Importance, *, budget_ms: float, width_step: int = 0
) -> GreedyResult:
    """Greedy steps (:func:`greedy_steps`) until the predicted latency is at most ``budget_ms``.

    Raises ConfigError when channel pruning alone cannot reach ``budget_ms`` on this table.
    """
    plan = full_plan(structure)
    result = GreedyResult(plan, table.predict_ms(plan))
    if result.predicted_ms <= budget_ms:
        return result
    for step in greedy_steps(structure, table, importance, width_step=width_step):
        result.steps.append(step)
        result.plan, result.predicted_ms = step.plan, step.predicted_ms
        if step.predicted_ms <= budget_ms:
            return result
    raise ConfigError(
        f"latency budget {budget_ms:.3f} ms is unreachable by channel pruning alone: the narrowest widths the greedy "
        f"pruner reaches are predicted at {result.predicted_ms:.3f} ms"
    )


__all__ = [
    "FRACTIONS",
    "GreedyResult",
    "GreedyStep",
    "greedy_latency_pruning",
    "greedy_steps",
    "magnitude_plans",
    "match_measured",
    "match_predicted",
    "scaled_plan",
    "uniform_plans",
]
