"""Fit and check the latency model against measured end-to-end latency of pruned models.

``calibrate_table`` measures the dense model and a few random pruned ones and fits
``measured = scale x entries + overhead_ms`` (least squares). ``validate_table`` measures *other*
random pruned models and reports three predictions side by side: the layer entries alone, the
entries plus the dense model's additive overhead, and the calibrated model.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import torch.nn as nn
from scipy.optimize import nnls

from dance3d.mdp.graph import Structure, extract_structure
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.lut_measure import measure_model_ms
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, full_plan
from dance3d.progress import progress_bar


def random_plans(structure: Structure, table: LatencyTable, count: int, *, seed: int = 0) -> list[PrunePlan]:
    """Plans spread over the latency range: a global keep fraction, jittered per group, random block removal."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        fraction = rng.uniform(0.2, 1.0)
        removed = tuple(b for b in structure.blocks if rng.random() < 0.25)
        gone = {g for b in removed for g in structure.blocks[b].groups}
        widths = {}
        for g, grid in table.group_grids.items():
            wanted = fraction * grid[-1] * rng.uniform(0.8, 1.2)
            widths[g] = 0 if g in gone else min(grid, key=lambda w, t=wanted: abs(w - t))
        plans.append(PrunePlan(widths, removed))
    return plans


def _measure(model: nn.Module, structure: Structure, table: LatencyTable, plans: list[PrunePlan], desc: str,
             progress: bool) -> list[float]:  # fmt: skip
    bar = progress_bar(plans, desc=desc, unit="model", disable=not progress)
    return [measure_model_ms(materialize(structure, p), table.clip_shape, table.runtime) for p in bar]


def calibrate_table(
    model: nn.Module, table: LatencyTable, *, samples: int, seed: int = 0, progress: bool = True
) -> LatencyTable:
    """A copy of ``table`` with ``scale`` and ``overhead_ms`` fitted on the dense and ``samples`` pruned models."""
    if samples < 1:
        return table
    structure = extract_structure(model, table.clip_shape)
    plans = [full_plan(structure), *random_plans(structure, table, samples, seed=seed)]
    measured = _measure(model, structure, table, plans, "calibrate", progress)
    entries = [table.entries_ms(p) for p in plans]
    design = np.stack([np.asarray(entries), np.ones(len(entries))], axis=1)
    # non-negative least squares: a negative overhead (a noisy fit) would make any tiny budget look reachable
    (scale, overhead), _ = nnls(design, np.asarray(measured, dtype=float))
    points = [{"entries_ms": e, "measured_ms": m} for e, m in zip(entries, measured, strict=True)]
    if not scale > 0:  # degenerate fit (e.g. all samples alike): keep the additive model
        return replace(table, calibration=points)
    return replace(table, scale=float(scale), overhead_ms=float(overhead), calibration=points)


def validate_table(
    model: nn.Module, table: LatencyTable, *, samples: int, seed: int = 1, progress: bool = True
) -> list[dict[str, Any]]:
    """Measure ``samples`` random pruned models (not the calibration ones); predicted vs measured rows."""
    structure = extract_structure(model, table.clip_shape)
    plans = random_plans(structure, table, samples, seed=seed)
    measured = _measure(model, structure, table, plans, "validate", progress)
    rows = []
    for i, (plan, ms) in enumerate(zip(plans, measured, strict=True)):
        entries = table.entries_ms(plan)
        predictions = {
            "entries": entries,
            "additive": entries + table.additive_overhead_ms,
            "calibrated": table.predict_ms(plan),
        }
        row: dict[str, Any] = {
            "plan": f"random-{i + 1}",
            "removed_blocks": len(plan.removed_blocks),
            "mean_width_fraction": float(np.mean([plan.widths[g] / table.group_grids[g][-1] for g in plan.widths])),
            "measured_ms": ms,
        }
        for name, value in predictions.items():
            row[f"{name}_ms"] = value
            row[f"{name}_error_pct"] = 100.0 * (value - ms) / ms
        rows.append(row)
    return rows


def summarize_validation(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and max absolute error (%) of each prediction."""
    out = {}
    for name in ("entries", "additive", "calibrated"):
        errors = [abs(r[f"{name}_error_pct"]) for r in rows]
        if errors:
            out[f"{name}_mean_abs_error_pct"] = float(np.mean(errors))
            out[f"{name}_max_abs_error_pct"] = float(np.max(errors))
    return out
