"""MDP's static baselines on a latency table: uniform scaling, magnitude (L1) selection, latency matching, greedy."""

import pytest
import torch
from mdp_helpers import randomize_bn, synthetic_table

from dance3d.errors import ConfigError
from dance3d.mdp.baselines import (
    FRACTIONS,
    greedy_latency_pruning,
    greedy_steps,
    magnitude_plans,
    match_measured,
    match_predicted,
    scaled_plan,
    uniform_plans,
)
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import Importance, magnitude_importance
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, full_plan
from dance3d.models import create_model

CLIP = (3, 4, 32, 32)


@pytest.fixture(scope="module")
def setup():
    model = randomize_bn(create_model("tiny-test", num_classes=4)).eval()
    structure = extract_structure(model, CLIP)
    return model, structure, synthetic_table(structure, step=4)


def _importance(structure, low_group: str | None = None) -> Importance:
    generator = torch.Generator().manual_seed(0)
    channels = {g: torch.rand(info.width, generator=generator) + 1.0 for g, info in structure.groups.items()}
    if low_group:
        channels[low_group] = channels[low_group] * 1e-4  # almost worthless channels
    return Importance(channels, dict.fromkeys(structure.blocks, 1.0))


def test_uniform_scaling_hits_a_latency_target_on_the_table(setup):
    _, structure, table = setup
    plans = uniform_plans(structure, table)
    budget = 0.6 * table.dense_latency_ms
    plan = match_predicted(plans, table, budget_ms=budget)
    predicted = [table.predict_ms(p) for p in plans]
    assert table.predict_ms(plan) <= budget
    assert table.predict_ms(plan) == max(p for p in predicted if p <= budget)  # the closest from below
    assert any(p > budget for p in predicted)  # a real choice: wider plans miss the target
    fraction = FRACTIONS[plans.index(plan)]
    assert plan == scaled_plan(structure, table, inner=fraction, other=fraction)  # every group scaled alike
    with pytest.raises(ConfigError, match="no plan is predicted within"):
        match_predicted(plans, table, budget_ms=0.5 * min(predicted))


def test_magnitude_plans_shrink_inner_groups_before_the_stream(setup):
    _, structure, table = setup
    plans = magnitude_plans(structure, table)
    inner = [g for g, info in structure.groups.items() if info.block]
    stream = [g for g, info in structure.groups.items() if not info.block]
    first_half = plans[: len(FRACTIONS)]
    assert all(p.widths[g] == structure.groups[g].width for p in first_half for g in stream)
    assert all(first_half[-1].widths[g] == table.group_grids[g][0] for g in inner)
    assert all(plans[-1].widths[g] == table.group_grids[g][0] for g in structure.groups)


def test_magnitude_selection_keeps_the_largest_norm_channels(setup):
    model, structure, _ = setup
    group = "blocks.2.conv_a"
    weight = structure.graph_module.get_submodule(group).weight.detach()
    norms = weight.abs().reshape(weight.shape[0], -1).sum(1)
    plan = PrunePlan({**full_plan(structure).widths, group: 8})
    keep = magnitude_importance(structure).keep_indices(plan.widths)
    assert keep[group].tolist() == sorted(torch.topk(norms, 8).indices.tolist())
    smaller = materialize(structure, plan, keep=keep)
    kept_weight = smaller.get_submodule(group).weight
    assert kept_weight.shape[0] == 8
    assert kept_weight.abs().reshape(8, -1).sum(1).min() >= torch.sort(norms, descending=True).values[7] - 1e-6
    with torch.no_grad():
        assert smaller(torch.rand(1, *CLIP)).shape == model(torch.rand(1, *CLIP)).shape


def test_latency_matching_walks_to_narrower_plans_until_one_measures_within_the_target(setup):
    _, structure, table = setup
    plans = uniform_plans(structure, table)
    budget = 1.01 * sorted({table.predict_ms(p) for p in plans})[-2]  # just over the second-widest plans
    measured = []

    def slow_device(plan: PrunePlan) -> float:  # runs 25% slower than the table predicts
        measured.append(plan)
        return 1.25 * table.predict_ms(plan)

    plan, plan_ms = match_measured(plans, table, budget_ms=budget, measure=slow_device, tolerance=1.0)
    assert measured[0] == match_predicted(plans, table, budget_ms=budget)  # starts at the predicted match
    assert plan == measured[-1] and plan_ms <= budget
    assert len(measured) > 1 and all(1.25 * table.predict_ms(p) > budget for p in measured[:-1])
    exact_plan, _ = match_measured(plans, table, budget_ms=budget, measure=table.predict_ms)
    assert exact_plan == measured[0]


def test_latency_matching_walks_to_wider_plans_on_a_device_faster_than_the_table(setup):
    _, structure, table = setup
    plans = uniform_plans(structure, table)
    predicted = sorted({table.predict_ms(p) for p in plans})
    budget = 1.001 * 0.75 * predicted[len(predicted) // 2]  # the middle plan fits this device, not the table
    measured = []

    def fast_device(plan: PrunePlan) -> float:  # runs 25% faster than the table predicts
        measured.append(plan)
        return 0.75 * table.predict_ms(plan)

    plan, plan_ms = match_measured(plans, table, budget_ms=budget, measure=fast_device, tolerance=1.0)
    assert measured[0] == match_predicted(plans, table, budget_ms=budget)  # starts at the predicted match
    assert plan_ms == 0.75 * table.predict_ms(plan) <= budget
    assert table.predict_ms(plan) > table.predict_ms(measured[0])  # wider than the predicted match
    wider = [p for p in plans[: plans.index(plan)] if p != plan]
    assert wider and 0.75 * table.predict_ms(wider[-1]) > budget  # the next wider plan measures over: widest fit
    assert measured[-1] == wider[-1] and table.predict_ms(plan) == predicted[len(predicted) // 2]


def test_greedy_pruner_meets_the_target_and_removes_low_importance_per_ms_groups_first(setup):
    _, structure, table = setup
    low = "blocks.2.conv_a"
    importance = _importance(structure, low_group=low)
    budget = 0.55 * table.dense_latency_ms
    result = greedy_latency_pruning(structure, table, importance, budget_ms=budget)
    assert result.predicted_ms == table.predict_ms(result.plan) <= budget
    assert len(result.steps) > 1 and result.steps[-2].predicted_ms > budget  # stops as soon as the target is met
    low_steps = len(table.group_grids[low]) - 1
    assert [s.group for s in result.steps[:low_steps]] == [low] * low_steps  # the worthless channels go first
    assert result.plan.widths[low] == table.group_grids[low][0]

    # the first step is the least importance per predicted ms saved among all first steps
    dense = full_plan(structure)
    ratios = {}
    for g, grid in table.group_grids.items():
        narrower = PrunePlan({**dense.widths, g: grid[-2]})
        saved = table.predict_ms(dense) - table.predict_ms(narrower)
        if saved > 0:
            ratios[g] = (importance.kept_value(g, grid[-1]) - importance.kept_value(g, grid[-2])) / saved
    first = result.steps[0]
    assert first.group == min(ratios, key=ratios.get)
    assert first.importance_per_ms == pytest.approx(ratios[first.group])


def test_greedy_pruner_follows_the_importance_and_refuses_an_unreachable_target(setup):
    _, structure, table = setup
    orders = {g: [s.group for s in greedy_steps(structure, table, _importance(structure, low_group=g))][0]
              for g in ("stem.0", "blocks.3.conv_a")}  # fmt: skip
    assert orders == {"stem.0": "stem.0", "blocks.3.conv_a": "blocks.3.conv_a"}
    steps = list(greedy_steps(structure, table, _importance(structure)))
    assert all(table.group_grids[g][0] == w for g, w in steps[-1].plan.widths.items())  # ends at the narrowest
    with pytest.raises(ConfigError, match="unreachable by channel pruning alone"):
        greedy_latency_pruning(structure, table, _importance(structure), budget_ms=0.5 * steps[-1].predicted_ms)
    dense = greedy_latency_pruning(structure, table, _importance(structure), budget_ms=table.dense_latency_ms)
    assert dense.steps == [] and dense.plan == full_plan(structure)
