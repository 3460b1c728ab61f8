"""Fit, choose and check the latency model against measured end-to-end latency of pruned models.

``calibrate_table`` measures the dense model and a few random pruned ones, fits the candidate
models of :mod:`dance3d.mdp.lut` (``entries``, ``additive``, ``overhead`` with the scale fixed at 1,
``calibrated`` ``scale x entries + overhead_ms``) and keeps the one with the smallest held-out
error (``select_predictor``: leave-one-out cross-validation over the pruned calibration models).
``validate_table`` measures *other* random pruned models and reports every candidate's prediction
and the selected one's side by side; ``summarize_validation`` gives their mean and max errors.

The models of a calibration or validation set are timed round-robin, so a slow spell of the
machine is spread over all of them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import torch.nn as nn
from scipy.optimize import nnls

from dance3d.mdp.graph import Structure, extract_structure
from dance3d.mdp.lut import PREDICTORS, LatencyPredictor, LatencyRuntime, LatencyTable, error_pct
from dance3d.mdp.lut_measure import TableGrid, build_table, measure_models_ms
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, full_plan
from profiling import collect_env


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


def _measure(structure: Structure, table: LatencyTable, plans: list[PrunePlan], desc: str,
             progress: bool) -> list[float]:  # fmt: skip
    """``plans`` materialised and timed round-robin (see ``measure_models_ms``)."""
    models = [materialize(structure, p) for p in plans]
    return measure_models_ms(models, table.clip_shape, table.runtime, progress=progress, desc=desc)


def _fit(
    name: str, entries: np.ndarray, measured: np.ndarray, additive_overhead_ms: float
) -> tuple[float, float] | None:
    """``(scale, offset_ms)`` of candidate ``name`` fitted on these points; ``None`` when they cannot fit it."""
    if name == "entries":
        return 1.0, 0.0
    if name == "additive":
        return 1.0, additive_overhead_ms
    if name == "overhead":  # the median gap (robust to one disturbed measurement); >= 0 like the calibrated fit
        return (1.0, max(0.0, float(np.median(measured - entries)))) if len(entries) else None
    if name == "calibrated":
        if len(entries) < 2 or np.ptp(entries) <= 0:
            return None
        design = np.stack([entries, np.ones(len(entries))], axis=1)
        # non-negative least squares: a negative overhead (a noisy fit) would make any tiny budget look reachable
        (scale, overhead), _ = nnls(design, measured)
        return (float(scale), float(overhead)) if scale > 0 else None
    raise ValueError(f"unknown latency model {name!r}; one of {PREDICTORS}")


def select_predictor(
    points: list[dict[str, Any]], *, additive_overhead_ms: float
) -> tuple[LatencyPredictor | None, list[LatencyPredictor]]:
    """The latency model with the smallest held-out error on ``points``, and every candidate scored.

    ``points``: ``{"entries_ms", "measured_ms", "dense"}`` per measured model. Leave-one-out
    cross-validation over the pruned models (``dense`` false): each is predicted by the candidate
    fitted on all the other points (the dense model is always in the fit, never held out: its
    latency is measured, not predicted). A candidate's score is the mean absolute % error over the
    held-out models (the max is recorded too); the smallest wins, ties going to the simpler model
    (order of ``PREDICTORS``). The winner's coefficients are refitted on all points. Candidates
    that cannot be fitted on every fold (``calibrated`` needs two points with different entries)
    are left out; with no pruned points there is nothing to select (``None``).
    """
    entries = np.array([float(p["entries_ms"]) for p in points])
    measured = np.array([float(p["measured_ms"]) for p in points])
    held_out = [i for i, p in enumerate(points) if not p.get("dense", False)]
    candidates = []
    for name in PREDICTORS:
        errors = []
        for i in held_out:
            fit = np.arange(len(points)) != i
            coefficients = _fit(name, entries[fit], measured[fit], additive_overhead_ms)
            if coefficients is None:
                break
            scale, offset = coefficients
            errors.append(error_pct(scale * entries[i] + offset, measured[i]))
        full = _fit(name, entries, measured, additive_overhead_ms)
        if not held_out or len(errors) < len(held_out) or full is None:
            continue
        absolute = np.abs(errors)
        candidates.append(
            LatencyPredictor(name, full[0], full[1], float(absolute.mean()), float(absolute.max()), len(errors))
        )
    if not candidates:
        return None, []
    return min(candidates, key=lambda c: c.cv_mean_abs_error_pct), candidates


def calibrate_table(
    model: nn.Module, table: LatencyTable, *, samples: int, seed: int = 0, progress: bool = True
) -> LatencyTable:
    """A copy of ``table`` with its latency model chosen on the dense and ``samples`` pruned models measured.

    Stores the measured points (``calibration``), the ``calibrated`` fit in ``scale``/``overhead_ms``,
    every candidate with its leave-one-out error (``predictor_candidates``) and the selected one
    (``predictor``, what ``predict_ms`` and the solver use); see :func:`select_predictor`.
    """
    if samples < 1:
        return table
    structure = extract_structure(model, table.clip_shape)
    plans = [full_plan(structure), *random_plans(structure, table, samples, seed=seed)]
    measured = _measure(structure, table, plans, "calibrate", progress)
    entries = [table.entries_ms(p) for p in plans]
    names = ["dense", *(f"random-{i + 1}" for i in range(samples))]
    points = [
        {"plan": n, "dense": n == "dense", "entries_ms": e, "measured_ms": m}
        for n, e, m in zip(names, entries, measured, strict=True)
    ]
    predictor, candidates = select_predictor(points, additive_overhead_ms=table.additive_overhead_ms)
    out = replace(table, calibration=points, predictor=predictor, predictor_candidates=candidates)
    fit = _fit("calibrated", np.asarray(entries), np.asarray(measured, dtype=float), table.additive_overhead_ms)
    if fit is None:  # degenerate fit (e.g. all samples alike): scale/overhead_ms stay the additive model
        return out
    return replace(out, scale=fit[0], overhead_ms=fit[1])


def validate_table(
    model: nn.Module, table: LatencyTable, *, samples: int, seed: int = 1, progress: bool = True
) -> list[dict[str, Any]]:
    """Measure ``samples`` random pruned models (not the calibration ones); predicted vs measured rows.

    Each row has ``<name>_ms`` and ``<name>_error_pct`` for every candidate model (``entries``,
    ``additive``, ``calibrated`` for tables without candidates) and for ``selected``, the model the
    table predicts with (named in ``selected_model``).
    """
    structure = extract_structure(model, table.clip_shape)
    plans = random_plans(structure, table, samples, seed=seed)
    measured = _measure(structure, table, plans, "validate", progress)
    if table.predictor_candidates:
        models = {c.name: c for c in table.predictor_candidates}
    else:  # no candidates scored: the three fixed models (as before the selection existed)
        models = {
            "entries": LatencyPredictor("entries"),
            "additive": LatencyPredictor("additive", 1.0, table.additive_overhead_ms),
            "calibrated": LatencyPredictor("calibrated", table.scale, table.offset_ms),
        }
    models["selected"] = table.selected
    rows = []
    for i, (plan, ms) in enumerate(zip(plans, measured, strict=True)):
        entries = table.entries_ms(plan)
        row: dict[str, Any] = {
            "plan": f"random-{i + 1}",
            "removed_blocks": len(plan.removed_blocks),
            "mean_width_fraction": float(np.mean([plan.widths[g] / table.group_grids[g][-1] for g in plan.widths])),
            "measured_ms": ms,
            "selected_model": table.selected.name,
        }
        for name, predictor in models.items():
            value = predictor.predict_ms(entries)
            row[f"{name}_ms"] = value
            row[f"{name}_error_pct"] = error_pct(value, ms)
        rows.append(row)
    return rows


def prediction_names(rows: list[dict[str, Any]]) -> list[str]:
    """The predictions present in validation rows, candidates first, then ``selected``."""
    names = [*PREDICTORS, "selected"]
    return [n for n in names if rows and f"{n}_error_pct" in rows[0]]


def summarize_validation(rows: list[dict[str, Any]]) -> dict[str, float | str]:
    """Mean and max absolute error (%) of each prediction, and which model the table selected."""
    out: dict[str, float | str] = {}
    if rows and "selected_model" in rows[0]:
        out["selected_model"] = rows[0]["selected_model"]
    for name in prediction_names(rows):
        errors = [abs(r[f"{name}_error_pct"]) for r in rows]
        out[f"{name}_mean_abs_error_pct"] = float(np.mean(errors))
        out[f"{name}_max_abs_error_pct"] = float(np.max(errors))
    return out


def measure_table(
    model: nn.Module,
    model_spec: dict[str, Any],
    clip_shape: tuple[int, int, int, int],
    *,
    runtime: LatencyRuntime,
    grid: TableGrid,
    calibrate: int,
    validate: int,
    seed: int = 0,
    progress: bool = True,
) -> LatencyTable:
    """The whole latency table of this device: entries, the latency model chosen on ``calibrate`` pruned
    models (seed ``seed``), ``validate`` other ones (seed ``seed + 1``) and the environment."""
    table = build_table(model, model_spec, clip_shape, runtime=runtime, grid=grid, progress=progress)
    table = calibrate_table(model, table, samples=calibrate, seed=seed, progress=progress)
    if validate:
        table.validation = validate_table(model, table, samples=validate, seed=seed + 1, progress=progress)
    table.env = collect_env()
    return table
