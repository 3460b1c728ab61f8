"""MDP against the baselines at equal latency: block removal on tiny-deep, latency matching, paired tests,
target rules and the structures figure."""

import pytest
import torch
from mdp_helpers import randomize_bn, synthetic_table
from scipy.stats import binomtest

from dance3d.mdp.baselines import TOLERANCE, greedy_steps, magnitude_plans, uniform_plans
from dance3d.mdp.comparison import (
    BASELINES,
    EQUAL_LATENCY_RATIO,
    METHODS,
    WIDER,
    mdp_ahead,
    paired_comparisons,
    pick_at_equal_latency,
    target_rules,
)
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import Importance, magnitude_importance
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import full_plan
from dance3d.mdp.plots import plot_structures, structure_matrix
from dance3d.mdp.problem import build_problem
from dance3d.mdp.solver import solve
from dance3d.models import create_model

CLIP = (3, 4, 32, 32)


@pytest.fixture(scope="module")
def deep():
    model = randomize_bn(create_model("tiny-deep", num_classes=4)).eval()
    structure = extract_structure(model, CLIP)
    return model, structure, synthetic_table(structure, step=8)


def _importance(structure, *, weak_block: str | None = None, seed: int = 0) -> Importance:
    generator = torch.Generator().manual_seed(seed)
    channels = {g: torch.rand(info.width, generator=generator) + 1.0 for g, info in structure.groups.items()}
    blocks = dict.fromkeys(structure.blocks, 1.0)
    if weak_block:
        for g in structure.blocks[weak_block].groups:
            channels[g] = channels[g] * 1e-4
        blocks[weak_block] = 1e-4
    return Importance(channels, blocks)


def test_tiny_deep_has_six_removable_blocks(deep):
    _, structure, _ = deep
    assert sorted(structure.blocks) == [f"blocks.{i}" for i in range(6)]
    assert all(structure.blocks[f"blocks.{i}"].groups == (f"blocks.{i}.conv_a",) for i in range(6))


def test_solver_removes_a_weak_block_of_tiny_deep_at_a_low_target(deep):
    model, structure, table = deep
    importance = _importance(structure, weak_block="blocks.4")
    loose = solve(build_problem(structure, table, importance, budget_ms=table.dense_latency_ms))
    assert loose.plan.removed_blocks == ()  # nothing to gain at the dense budget
    tight = solve(build_problem(structure, table, importance, budget_ms=0.3 * table.dense_latency_ms))
    assert "blocks.4" in tight.plan.removed_blocks and tight.plan.widths["blocks.4.conv_a"] == 0
    assert table.predict_ms(tight.plan) <= 0.3 * table.dense_latency_ms
    pruned = materialize(structure, tight.plan, keep=importance.keep_indices(tight.plan.widths))
    names = dict(pruned.named_modules())
    assert "blocks.4.conv_a" not in names and "blocks.4.conv_b" not in names and "blocks.3.conv_a" in names
    with torch.no_grad():
        logits = pruned(torch.randn(2, *CLIP))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_baselines_are_matched_to_mdps_latency(deep):
    _, structure, table = deep
    taylor = _importance(structure)
    measured_plans = []

    def measure(plan):  # a deterministic device: it runs exactly as the table predicts
        measured_plans.append(plan)
        return table.predict_ms(plan)

    targets = (0.7, 0.5)
    magnitude = magnitude_importance(structure)
    picks = pick_at_equal_latency(structure, table, taylor=taylor, magnitude=magnitude, targets=targets,
                                  measure=measure)  # fmt: skip
    assert [(p.target, p.method) for p in picks] == [(t, m) for t in targets for m in METHODS]
    paths = {
        "uniform": uniform_plans(structure, table),
        "magnitude": magnitude_plans(structure, table),
        "greedy": [full_plan(structure), *(s.plan for s in greedy_steps(structure, table, taylor))],
    }
    for target in targets:
        mdp = next(p for p in picks if (p.target, p.method) == (target, "mdp"))
        assert mdp.matched_ms <= target * table.dense_latency_ms and mdp.extra["rounds"]
        for pick in (p for p in picks if p.target == target and p.method in BASELINES):
            predicted = table.predict_ms(pick.plan)
            assert predicted == pytest.approx(pick.matched_ms)
            assert predicted <= mdp.matched_ms * TOLERANCE  # equal latency, within the timing tolerance
            path = paths[pick.method]
            wider = path[: path.index(pick.plan)]  # every wider plan on the baseline's path misses MDP's latency
            assert wider and all(table.predict_ms(p) > mdp.matched_ms for p in wider)
            assert pick.importance is (magnitude if pick.method == "magnitude" else taylor)
    assert len(measured_plans) >= len(picks)


def _rows(errors_pct=(-1.0, 2.0, -3.0), removed=(("blocks.1",), (), ())):
    rows = []
    for target, error, blocks in zip((0.6, 0.45, 0.3), errors_pct, removed, strict=True):
        rows.append({"target": target, "method": "mdp", "prediction_error_pct": error, "removed_blocks": list(blocks),
                     "measured_ms": 10 * target})  # fmt: skip
        rows += [{"target": target, "method": b, "prediction_error_pct": 30.0, "removed_blocks": ["blocks.2"],
                  "measured_ms": 9 * target} for b in BASELINES]  # fmt: skip
    return rows


def _pairs(overrides=None, *, diff=2.0, p=0.2):
    pairs = [{"target": t, "baseline": b, "top1_diff_points": diff, "mcnemar_p": p, "latency_ratio": 0.98}
             for t in (0.6, 0.45, 0.3) for b in BASELINES]  # fmt: skip
    for (target, baseline), values in (overrides or {}).items():
        next(x for x in pairs if (x["target"], x["baseline"]) == (target, baseline)).update(values)
    return pairs


def test_mdp_ahead_needs_a_point_or_a_significant_test():
    assert mdp_ahead({"top1_diff_points": 1.0, "mcnemar_p": 0.9})
    assert mdp_ahead({"top1_diff_points": 0.5, "mcnemar_p": 0.01})
    assert not mdp_ahead({"top1_diff_points": 0.5, "mcnemar_p": 0.2})
    assert not mdp_ahead({"top1_diff_points": -3.0, "mcnemar_p": 0.001})  # significantly behind is not ahead


def test_target_rules_on_synthetic_records():
    rows = _rows()
    rule = "mdp_ahead_of_every_baseline_at_equal_latency"
    assert target_rules(rows, _pairs()) == {rule: True, "blocks_removed_at_some_target": True,
                                           "prediction_within_5pct": True}  # fmt: skip
    # Only the two lowest targets are judged: behind at 0.6 does not matter, behind at 0.45 does.
    assert target_rules(rows, _pairs({(0.6, "greedy"): {"top1_diff_points": -5.0}}))[rule]
    assert not target_rules(rows, _pairs({(0.45, "greedy"): {"top1_diff_points": 0.5}}))[rule]
    assert target_rules(rows, _pairs({(0.3, "uniform"): {"top1_diff_points": 0.5, "mcnemar_p": 0.01}}))[rule]
    # A baseline measuring well under MDP's latency is not beaten at equal latency; one slower than MDP is.
    assert not target_rules(rows, _pairs({(0.3, "greedy"): {"latency_ratio": 0.9}}))[rule]
    assert target_rules(rows, _pairs({(0.3, "greedy"): {"latency_ratio": 1.3}}))[rule]
    missing = [p for p in _pairs() if (p["target"], p["baseline"]) != (0.3, "magnitude")]
    assert not target_rules(rows, missing)[rule]  # a baseline without a comparison is not beaten
    assert not target_rules(_rows(removed=((), (), ())), _pairs())[
        "blocks_removed_at_some_target"
    ]  # baselines' ignored
    assert not target_rules(_rows(errors_pct=(-1.0, 5.1, 0.0)), _pairs())["prediction_within_5pct"]
    assert target_rules(_rows(errors_pct=(-5.0, 4.9, 0.0)), _pairs())["prediction_within_5pct"]


def test_paired_comparisons_on_the_same_clips():
    rows = _rows()
    mdp = [{"index": i, "correct": i < 30} for i in range(50)]
    baseline = [{"index": i, "correct": i < 20 or i >= 48} for i in range(50)]  # 10 clips only MDP, 2 only it
    records = {(t, m): mdp if m == "mdp" else baseline for t in (0.6, 0.45, 0.3) for m in METHODS}
    pairs = paired_comparisons(rows, records)
    assert [(p["target"], p["baseline"]) for p in pairs] == [(t, b) for t in (0.6, 0.45, 0.3) for b in BASELINES]
    first = pairs[0]
    assert (first["only_a_correct"], first["only_b_correct"]) == (10, 2)
    assert first["top1_diff_points"] == pytest.approx(16.0)
    assert first["mcnemar_p"] == pytest.approx(binomtest(10, 12, 0.5).pvalue)
    assert first["latency_ratio"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="same clips"):
        paired_comparisons(rows, {**records, (0.3, "greedy"): baseline[:-1]})


def test_structures_figure(deep, tmp_path):
    _, structure, table = deep
    dense = structure.full_widths()
    plan = solve(build_problem(structure, table, _importance(structure, weak_block="blocks.4"),
                               budget_ms=0.3 * table.dense_latency_ms)).plan  # fmt: skip
    rows = [{"target": 0.3, "method": "mdp", "widths": plan.widths, "removed_blocks": list(plan.removed_blocks)},
            {"target": 0.3, "method": "uniform", "widths": dense, "removed_blocks": []}]  # fmt: skip
    matrix, labels, groups = structure_matrix(rows, dense)
    assert groups == list(dense) and labels[1] == "0.30 uniform" and "blocks.4" in labels[0]
    assert matrix[0, groups.index("blocks.4.conv_a")] == 0 and (matrix[1] == 1).all()
    blocks = {name: block.groups for name, block in structure.blocks.items()}
    path = plot_structures(rows, dense, blocks, tmp_path / "structures.png")
    assert path.stat().st_size > 5000


def test_a_coarse_baseline_gets_its_wider_bracket_and_beating_it_counts(deep):
    _, structure, table = deep
    taylor = _importance(structure)

    def measure(plan):
        return table.predict_ms(plan)

    picks = pick_at_equal_latency(structure, table, taylor=taylor, magnitude=magnitude_importance(structure),
                                  targets=(0.5,), measure=measure, bracket_targets=(0.5,))  # fmt: skip
    mdp_ms = picks[0].matched_ms
    wider = [p for p in picks if p.method.endswith(WIDER)]
    assert wider, "uniform scaling's steps leave some baseline under 0.95 of MDP's latency"
    for pick in wider:
        base = next(p for p in picks if p.method == pick.extra["bracket_of"])
        assert base.matched_ms < EQUAL_LATENCY_RATIO * mdp_ms < pick.matched_ms
    rows = [{"target": t, "method": "mdp", "prediction_error_pct": 1.0, "removed_blocks": [], "measured_ms": 10.0}
            for t in (0.6, 0.3)]  # fmt: skip
    pairs = [{"target": t, "baseline": b, "top1_diff_points": -5.0, "mcnemar_p": 0.001, "latency_ratio": 0.8}
             for t in (0.6, 0.3) for b in BASELINES]  # fmt: skip
    rule = "mdp_ahead_of_every_baseline_at_equal_latency"
    assert not target_rules(rows, pairs)[rule]  # behind baselines that were faster: not shown
    pairs += [{"target": t, "baseline": b + WIDER, "top1_diff_points": 3.0, "mcnemar_p": 0.01, "latency_ratio": 1.1}
              for t in (0.6, 0.3) for b in BASELINES]  # fmt: skip
    assert target_rules(rows, pairs)[rule]  # ahead of every slower bracket: ahead at equal latency
    pairs[-1]["latency_ratio"] = 0.9  # one bracket measured faster than MDP after all
    assert not target_rules(rows, pairs)[rule]
