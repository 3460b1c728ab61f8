"""The MILP against brute force on small instances; infeasible budgets; importance-driven choices."""

import itertools

import numpy as np
import pytest

from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.plan import PrunePlan
from dance3d.mdp.solver import MdpProblem, minimum_latency_ms, solve

GRIDS = {"A": (8, 16, 24), "B": (8, 16), "C1": (8, 16), "C2": (4, 8, 12)}
BLOCKS = {"b1": ("B",), "b2": ("C1", "C2")}
LAYERS = [  # (name, axes, block)
    ("stem", ("A",), None),
    ("b1.a", ("A", "B"), "b1"),
    ("b1.b", ("A", "B"), "b1"),
    ("b2.a", ("A", "C1"), "b2"),
    ("b2.b", ("C1", "C2"), "b2"),
    ("b2.c", ("A", "C2"), "b2"),
    ("head", ("A",), None),
    ("fixed", (), None),
]


def _problem(seed: int, budget_fraction: float, *, scale: float = 1.0) -> MdpProblem:
    rng = np.random.default_rng(seed)
    layers = {}
    for name, axes, block in LAYERS:
        shape = tuple(len(GRIDS[a]) for a in axes)
        values = rng.uniform(0.2, 2.0, size=shape)  # not monotone on purpose
        layers[name] = LayerTable(axes, tuple(GRIDS[a] for a in axes), values, block)
    table = LatencyTable({"name": "toy", "num_classes": 2}, (3, 1, 1, 1), LatencyRuntime(), layers, 0.0, GRIDS,
                         scale=scale, overhead_ms=0.3)  # fmt: skip
    table.dense_latency_ms = table.predict_ms(PrunePlan({g: w[-1] for g, w in GRIDS.items()}))
    in_block = {g for groups in BLOCKS.values() for g in groups}
    choices = {g: (0, *w) if g in in_block else w for g, w in GRIDS.items()}
    values = {g: _values(rng, c) for g, c in choices.items()}
    return MdpProblem(choices, values, BLOCKS, {b: float(rng.uniform(0, 0.5)) for b in BLOCKS}, table,
                      budget_fraction * table.dense_latency_ms)  # fmt: skip


def _values(rng, choices) -> tuple[float, ...]:
    gains = np.sort(rng.uniform(0, 1, len(choices)))
    return tuple(0.0 if w == 0 else float(v) for w, v in zip(choices, gains, strict=True))


def _brute_force(problem: MdpProblem) -> tuple[float, PrunePlan | None]:
    best, best_plan = -np.inf, None
    groups = list(problem.choices)
    for combo in itertools.product(*(range(len(problem.choices[g])) for g in groups)):
        widths = {g: problem.choices[g][i] for g, i in zip(groups, combo, strict=True)}
        removed = []
        consistent = True
        for block, members in problem.block_groups.items():
            zeros = {widths[g] == 0 for g in members}
            if len(zeros) > 1:
                consistent = False
            elif zeros == {True}:
                removed.append(block)
        if not consistent:
            continue
        plan = PrunePlan(widths, tuple(removed))
        if problem.table.predict_ms(plan) > problem.budget_ms + 1e-9:
            continue
        value = sum(problem.values[g][i] for g, i in zip(groups, combo, strict=True))
        value += sum(v for b, v in problem.block_values.items() if b not in removed)
        if value > best:
            best, best_plan = value, plan
    return best, best_plan


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget_fraction", [0.35, 0.6, 0.85])
def test_milp_matches_brute_force(seed, budget_fraction):
    problem = _problem(seed, budget_fraction, scale=1.0 + 0.1 * seed)
    best, _ = _brute_force(problem)
    if best == -np.inf:
        with pytest.raises(ConfigError, match="unreachable"):
            solve(problem)
        return
    solution = solve(problem)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(best, abs=1e-6)
    assert solution.predicted_ms <= problem.budget_ms + 1e-6
    removed = set(solution.plan.removed_blocks)
    for block, members in problem.block_groups.items():
        assert all((solution.plan.widths[g] == 0) == (block in removed) for g in members)


def test_generous_budget_keeps_everything():
    problem = _problem(0, 1.0)
    solution = solve(problem)
    assert solution.plan.removed_blocks == ()
    assert solution.plan.widths == {g: w[-1] for g, w in GRIDS.items()}


def test_unreachable_budget_names_the_fastest_structure():
    problem = _problem(1, 0.01)
    floor = minimum_latency_ms(problem)
    assert 0 < floor < problem.table.dense_latency_ms
    with pytest.raises(ConfigError, match=f"predicted at {floor:.3f} ms"):
        solve(problem)
