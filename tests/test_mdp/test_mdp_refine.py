"""Measured budget correction: a device slower than its table still gets a solution within the budget."""

import pytest
import torch
from mdp_helpers import randomize_bn, synthetic_table

from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import magnitude_importance
from dance3d.mdp.plan import full_plan
from dance3d.mdp.problem import build_problem
from dance3d.mdp.refine import solve_measured
from dance3d.mdp.solver import minimum_latency_ms
from dance3d.models import create_model


def _setup():
    torch.manual_seed(0)
    structure = extract_structure(randomize_bn(create_model("tiny-test", num_classes=4)).eval(), (3, 4, 32, 32))
    table = synthetic_table(structure, step=4)
    return structure, table, magnitude_importance(structure)


def test_a_slow_device_gets_a_tighter_budget_until_the_solution_measures_within_it():
    structure, table, importance = _setup()
    budget = 0.6 * table.predict_ms(full_plan(structure))
    calls = []

    def slow_device(plan):  # every structure runs 25% slower than the table predicts
        calls.append(plan)
        return 1.25 * table.predict_ms(plan)

    result = solve_measured(structure, table, importance, budget_ms=budget, measure=slow_device, max_rounds=4)
    first, last = result.rounds[0], result.rounds[-1]
    assert first["measured_ms"] > 1.02 * budget  # the table alone misses the budget on this device
    assert len(result.rounds) >= 2 and len(calls) == len(result.rounds)
    assert result.measured_ms <= 1.02 * budget and result.measured_ms == last["measured_ms"]
    assert last["effective_budget_ms"] < first["effective_budget_ms"] == budget
    assert result.prediction_error_pct == pytest.approx(100 * (1 / 1.25 - 1))  # the model itself is unchanged
    assert result.solution.objective <= first["objective"]


def test_an_accurate_table_needs_one_round_and_rounds_are_capped():
    structure, table, importance = _setup()
    budget = 0.6 * table.predict_ms(full_plan(structure))
    exact = solve_measured(structure, table, importance, budget_ms=budget, measure=table.predict_ms)
    assert len(exact.rounds) == 1 and exact.prediction_error_pct == pytest.approx(0.0)
    capped = solve_measured(
        structure, table, importance, budget_ms=budget, measure=lambda p: 3 * table.predict_ms(p), max_rounds=2
    )
    assert len(capped.rounds) == 2
    with pytest.raises(ValueError, match="max_rounds"):
        solve_measured(structure, table, importance, budget_ms=budget, measure=table.predict_ms, max_rounds=0)


def test_a_budget_tightened_below_the_fastest_structure_ends_at_it_instead_of_an_error():
    structure, table, importance = _setup()
    budget = 0.6 * table.predict_ms(full_plan(structure))

    def crawling_device(plan):  # ten times slower than the table: no structure on the grid meets the budget
        return 10.0 * table.predict_ms(plan)

    result = solve_measured(structure, table, importance, budget_ms=budget, measure=crawling_device, max_rounds=5)
    floor = minimum_latency_ms(build_problem(structure, table, importance, budget_ms=budget))
    assert 2 <= len(result.rounds) < 5  # stops once the fastest structure has been measured
    assert result.rounds[-1]["effective_budget_ms"] == pytest.approx(floor)
    assert result.solution.predicted_ms == pytest.approx(floor) and result.measured_ms > budget
