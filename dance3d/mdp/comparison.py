"""MDP against the static baselines at equal *measured* latency: picking the models, fine-tuning them
with one budget, the paired per-clip comparison and the rules the benchmarks judge it by.

For each target (a fraction of the dense latency) MDP solves under the budget and tightens it while
its solution measures over (:func:`~dance3d.mdp.refine.solve_measured`); each baseline of
:mod:`dance3d.mdp.baselines` is then shrunk until it measures at most MDP's measured latency
(:func:`~dance3d.mdp.baselines.match_measured`). Every pick is fine-tuned with the same trainer
settings and evaluated on the same test clips, so MDP and each baseline can be compared clip by clip
(McNemar's exact test, :func:`dance3d.reporting.paired_accuracy`).

A baseline's plans come in steps (uniform scaling, most of all), so its best match can measure well
under MDP's latency. At the ``bracket_targets`` such a baseline also gets its next wider plan
(method ``<baseline>-wider``), which measures over MDP's latency: MDP more accurate than that slower
model is ahead at equal latency, whatever the step size.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dance3d.data.registry import build_dataset
from dance3d.evaluation import evaluate
from dance3d.mdp.baselines import greedy_steps, magnitude_plans, match_measured, next_wider, uniform_plans
from dance3d.mdp.checkpoint import KIND, pruned_spec
from dance3d.mdp.graph import Structure
from dance3d.mdp.importance import Importance
from dance3d.mdp.lut import LatencyRuntime, LatencyTable
from dance3d.mdp.lut_measure import measure_model_ms
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, full_plan
from dance3d.mdp.refine import solve_measured
from dance3d.reporting import paired_accuracy
from dance3d.training.trainer import RunConfig, StartModel, train

METHODS = ("mdp", "uniform", "magnitude", "greedy")
BASELINES = METHODS[1:]
AHEAD_POINTS = 1.0  # MDP is ahead of a baseline by at least this many top-1 points ...
AHEAD_P = 0.05  # ... or by less, with McNemar's p below this
PREDICTION_TOLERANCE_PCT = 5.0
EQUAL_LATENCY_RATIO = 0.95  # a baseline measuring faster than this fraction of MDP's latency is not at equal latency
WIDER = "-wider"  # suffix of a baseline's next wider plan (the bracket above MDP's latency)


@dataclass(frozen=True)
class Pick:
    """One pruned model chosen for a target: its plan, the latency it was matched on and its channel ranking."""

    target: float
    method: str
    plan: PrunePlan
    matched_ms: float
    importance: Importance  # which channels a group keeps (Taylor, or filter L1 for magnitude pruning)
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, structure: Structure) -> torch.nn.Module:
        return materialize(structure, self.plan, keep=self.importance.keep_indices(self.plan.widths))


def pick_at_equal_latency(
    structure: Structure,
    table: LatencyTable,
    *,
    taylor: Importance,
    magnitude: Importance,
    targets: Sequence[float],
    measure: Callable[[PrunePlan], float],
    bracket_targets: Sequence[float] = (),
) -> list[Pick]:
    """MDP at each target (fraction of the table's dense latency), then every baseline matched to MDP's measured
    latency; ``measure(plan)`` times the plan's model on the table's device (ms; which channels a group keeps does
    not change it, see :func:`measure_plan_ms`). At ``bracket_targets`` a baseline matched under
    ``EQUAL_LATENCY_RATIO`` of MDP's latency also gets its next wider plan (``<method>-wider``). Picks in target
    order, MDP first."""
    greedy_path = [full_plan(structure), *(step.plan for step in greedy_steps(structure, table, taylor))]
    baselines = (
        ("uniform", uniform_plans(structure, table), taylor),
        ("magnitude", magnitude_plans(structure, table), magnitude),
        ("greedy", greedy_path, taylor),
    )
    picks = []
    for target in targets:
        measured = solve_measured(structure, table, taylor, budget_ms=target * table.dense_latency_ms, measure=measure)
        solution = measured.solution
        extra = {"solve_s": solution.solve_s, "mip_gap": solution.mip_gap, "rounds": measured.rounds}
        picks.append(Pick(target, "mdp", solution.plan, measured.measured_ms, taylor, extra))
        for method, plans, importance in baselines:
            plan, matched_ms = match_measured(plans, table, budget_ms=measured.measured_ms, measure=measure)
            picks.append(Pick(target, method, plan, matched_ms, importance))
            wider = next_wider(plans, plan)
            if target in bracket_targets and matched_ms < EQUAL_LATENCY_RATIO * measured.measured_ms and wider:
                picks.append(Pick(target, method + WIDER, wider, measure(wider), importance, {"bracket_of": method}))
    return picks


def measure_plan_ms(structure: Structure, plan: PrunePlan, runtime: LatencyRuntime) -> float:
    """Batch-1 latency (ms) of ``plan``'s model on ``runtime`` (each group keeps its first channels: only the
    widths matter for speed)."""
    return measure_model_ms(materialize(structure, plan), structure.clip_shape, runtime)


@dataclass(frozen=True)
class FinetuneResult:
    top1_before_finetune: float
    top1: float
    finetune_s: float
    records: list[dict[str, Any]]  # per test clip: index, label, prediction, correct


def finetune_and_test(
    structure: Structure,
    pick: Pick,
    *,
    dense_spec: dict[str, Any],
    run: RunConfig,
    out: Path,
    classes: tuple[str, ...],
) -> FinetuneResult:
    """Fine-tune ``pick``'s model with ``run`` (a fresh run in ``out``) and evaluate it on the test split."""
    model = pick.model(structure)
    test_set = build_dataset(run.data, "test", classes=classes)
    before = evaluate(model.eval(), test_set, classes=classes, batch_size=32, progress=False).top1
    shutil.rmtree(out, ignore_errors=True)
    start = StartModel(model, KIND, pruned_spec(dense_spec, structure.clip_shape, pick.plan))
    started = time.perf_counter()
    train(run, out, start=start)
    finetune_s = time.perf_counter() - started
    result = evaluate(model.eval(), test_set, classes=classes, batch_size=32, progress=False)
    records = [{k: r[k] for k in ("index", "label", "prediction", "correct")} for r in result.records]
    return FinetuneResult(before, result.top1, finetune_s, records)


def paired_comparisons(
    rows: Sequence[dict[str, Any]], records: dict[tuple[float, str], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """MDP against each baseline (and wider bracket) at each target, on the same test clips: top-1 difference
    (points, MDP minus baseline), discordant clips, McNemar's p, and the baseline's measured latency over MDP's."""
    measured = {(r["target"], r["method"]): r["measured_ms"] for r in rows}
    pairs = []
    for target in sorted({r["target"] for r in rows}, reverse=True):
        for baseline in (b + suffix for b in BASELINES for suffix in ("", WIDER)):
            if (target, baseline) not in records:
                continue
            pairs.append({
                "target": target, "baseline": baseline,
                **paired_accuracy(records[(target, "mdp")], records[(target, baseline)]),
                "latency_ratio": measured[(target, baseline)] / measured[(target, "mdp")],
            })  # fmt: skip
    return pairs


def mdp_ahead(pair: dict[str, Any]) -> bool:
    """MDP more accurate than the baseline: by at least ``AHEAD_POINTS``, or by less with McNemar's p < ``AHEAD_P``."""
    diff = pair["top1_diff_points"]
    return diff > 0 and (diff >= AHEAD_POINTS or pair["mcnemar_p"] < AHEAD_P)


def at_equal_latency(pair: dict[str, Any]) -> bool:
    """The baseline measured at least ``EQUAL_LATENCY_RATIO`` of MDP's latency (a slower baseline had more time)."""
    return pair["latency_ratio"] >= EQUAL_LATENCY_RATIO


def target_rules(rows: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """The benchmark's pass/fail rules (see ``docs/mdp.md``):

    * ``mdp_ahead_of_every_baseline_at_equal_latency``: at the two lowest targets MDP is ahead
      (:func:`mdp_ahead`) of every baseline, measured at equal latency (:func:`at_equal_latency`), or of its
      wider bracket measured at least at MDP's latency;
    * ``blocks_removed_at_some_target``: some MDP model has a removed block;
    * ``prediction_within_5pct``: every MDP model measures within 5% of its predicted latency.
    """
    lowest = sorted({r["target"] for r in rows})[:2]
    judged = [p for p in pairs if p["target"] in lowest]
    complete = {(t, b) for t in lowest for b in BASELINES} <= {(p["target"], p["baseline"]) for p in judged}
    mdp_rows = [r for r in rows if r["method"] == "mdp"]
    by_key = {(p["target"], p["baseline"]): p for p in judged}

    def ahead(target: float, baseline: str) -> bool:
        matched, wider = by_key[(target, baseline)], by_key.get((target, baseline + WIDER))
        return (mdp_ahead(matched) and at_equal_latency(matched)) or (
            wider is not None and mdp_ahead(wider) and at_equal_latency(wider)
        )

    return {
        "mdp_ahead_of_every_baseline_at_equal_latency": complete
        and all(ahead(t, b) for t in lowest for b in BASELINES),
        "blocks_removed_at_some_target": any(r["removed_blocks"] for r in mdp_rows),
        "prediction_within_5pct": bool(mdp_rows)
        and all(abs(r["prediction_error_pct"]) <= PREDICTION_TOLERANCE_PCT for r in mdp_rows),
    }


__all__ = [
    "AHEAD_P",
    "AHEAD_POINTS",
    "EQUAL_LATENCY_RATIO",
    "WIDER",
    "BASELINES",
    "METHODS",
    "FinetuneResult",
    "Pick",
    "at_equal_latency",
    "finetune_and_test",
    "mdp_ahead",
    "measure_plan_ms",
    "paired_comparisons",
    "pick_at_equal_latency",
    "target_rules",
]
