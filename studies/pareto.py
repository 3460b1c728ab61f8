"""Pareto analysis on plain arrays and tables: dominance, hypervolume, per-trial series, keep-rate matrix.

All functions take values in the objectives' own directions (``"maximize"``/``"minimize"``) and
turn them into minimisation internally.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dance3d.dynamic.gate_keys import keep_columns
from studies.objectives import MAXIMIZE


def to_minimize(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Negate maximised columns so that smaller is better everywhere."""
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    signs = np.array([-1.0 if d == MAXIMIZE else 1.0 for d in directions])
    return values * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """True for the rows no other row dominates (equal rows are all kept)."""
    points = to_minimize(values, directions)
    mask = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        dominated_by = np.all(points <= p, axis=1) & np.any(points < p, axis=1)
        mask[i] = not dominated_by.any()
    return mask


def _hv_min(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by ``points`` (minimisation) inside the box up to ``reference``, by slicing."""
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    order = np.argsort(points[:, -1])
    points = points[order]
    volume = 0.0
    for i in range(len(points)):
        upper = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        depth = upper - points[i, -1]
        if depth > 0:
            volume += depth * _hv_min(points[: i + 1, :-1], reference[:-1])
    return float(volume)


def hypervolume(values: np.ndarray, reference: Sequence[float], directions: Sequence[str]) -> float:
    """Hypervolume of ``values`` w.r.t. ``reference`` (both in the objectives' own directions)."""
    points = to_minimize(values, directions)
    ref = to_minimize(np.asarray(reference, dtype=float), directions)[0]
    if len(points) == 0:
        return 0.0
    return _hv_min(points[pareto_mask(points, ["minimize"] * len(directions))], ref)


def reference_point(values: np.ndarray, directions: Sequence[str], *, margin: float = 0.1) -> np.ndarray:
    """The worst value of each objective, pushed out by ``margin`` x its range (in the objectives' directions)."""
    points = to_minimize(values, directions)
    worst, best = points.max(axis=0), points.min(axis=0)
    span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0))
    return to_minimize((worst + margin * span)[None], directions)[0]


def hypervolume_series(
    frame: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str], reference: Sequence[float] | None = None
) -> pd.DataFrame:
    """Hypervolume of the feasible complete trials up to each trial number (``number``, ``hypervolume``).

    The reference defaults to :func:`reference_point` of all feasible complete trials.
    """
    trials = frame[(frame["state"] == "COMPLETE") & frame["feasible"]].sort_values("number")
    if trials.empty:
        return pd.DataFrame({"number": pd.Series(dtype="int64"), "hypervolume": pd.Series(dtype=float)})
    values = trials[list(objectives)].to_numpy(dtype=float)
    ref = reference_point(values, directions) if reference is None else np.asarray(reference, dtype=float)
    series = [hypervolume(values[: i + 1], ref, directions) for i in range(len(values))]
    return pd.DataFrame({"number": trials["number"].astype("int64").to_numpy(), "hypervolume": series})


def front_data(frame: pd.DataFrame, x: str, y: str, *, x_direction: str, y_direction: str) -> pd.DataFrame:
    """Complete trials with ``x``, ``y``, ``feasible`` and ``on_front`` (the 2-D front of the feasible ones)."""
    trials = frame[(frame["state"] == "COMPLETE")].dropna(subset=[x, y])
    out = trials[["number", x, y, "feasible"]].copy()
    out["on_front"] = False
    feasible = out[out["feasible"]]
    if not feasible.empty:
        mask = pareto_mask(feasible[[x, y]].to_numpy(dtype=float), [x_direction, y_direction])
        out.loc[feasible.index[mask], "on_front"] = True
    return out.sort_values(x).reset_index(drop=True)


def keep_rate_matrix(frame: pd.DataFrame, numbers: Sequence[int]) -> tuple[np.ndarray, list[int], list[str]]:
    """Rows: the given trials; columns: ``keep.g{i}.{axis}_keep`` in block order. NaN where missing."""
    columns = keep_columns(list(frame.columns), prefix="keep.")
    rows = frame.set_index("number").loc[list(numbers), columns] if columns else pd.DataFrame(index=list(numbers))
    labels = [c[len("keep.") :] for c in columns]
    return rows.to_numpy(dtype=float), [int(n) for n in numbers], labels
