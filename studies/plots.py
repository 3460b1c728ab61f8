"""Render a study's figures (PNG and SVG) from its storage alone: Pareto fronts, hypervolume, keep rates.

The data behind each figure comes from :mod:`studies.pareto` (tested); this module only draws.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dance3d.figures import subplots
from studies.objectives import MAXIMIZE, METRICS, QUALITY, quality_metric
from studies.pareto import front_data, hypervolume_series, keep_rate_matrix
from studies.storage import load_study, open_storage
from studies.table import study_spec, trials_frame

FRONT_METRICS = ("mac_fraction", "latency_ms", "energy_j")
FORMATS = ("png", "svg")


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        paths.append(path)
    return paths


def axis_label(metric: str, frame: pd.DataFrame) -> str:
    """The metric's label; energy axes also say how energy was obtained (meter or estimate)."""
    label = METRICS[metric].label
    if metric.startswith("energy") and "energy_label" in frame:
        sources = sorted({str(s) for s in frame["energy_label"].dropna()})
        label += f" [{', '.join(sources)}]" if sources else ""
    return label


def quality_axis(objectives: list[str]) -> str:
    """The y-axis of the fronts: ``mse`` (lower is better) for a forecaster's study, else ``accuracy``."""
    return quality_metric(objectives)


def front_metrics(frame: pd.DataFrame, objectives: list[str]) -> list[str]:
    """x-axes to draw against quality: the study's cost objectives, then MACs/latency/energy if measured."""
    quality = set(QUALITY.values())
    names = [o for o in objectives if o not in quality] + [m for m in FRONT_METRICS if m not in objectives]
    return [
        m for m in names if m in frame and frame[m].apply(lambda v: isinstance(v, float) and math.isfinite(v)).any()
    ]


def plot_front(frame: pd.DataFrame, x: str, out_dir: Path, *, y: str = "accuracy") -> list[Path]:
    """Trials (feasible filled, infeasible hollow), the 2-D front as a step line, baselines marked."""
    trials = frame[frame["source"] == "trial"]
    data = front_data(trials, x, y, x_direction=METRICS[x].direction, y_direction=METRICS[y].direction)
    fig, ax = subplots(figsize=(6, 4.2))
    feasible, infeasible = data[data["feasible"]], data[~data["feasible"]]
    ax.scatter(feasible[x], feasible[y], s=18, color="tab:blue", alpha=0.6, label="feasible trial")
    if not infeasible.empty:
        ax.scatter(infeasible[x], infeasible[y], s=18, facecolors="none", edgecolors="tab:gray", label="infeasible")
    front = data[data["on_front"]].sort_values(x)
    if not front.empty:
        where = "pre" if METRICS[x].direction == MAXIMIZE else "post"  # what the best trial left of x reaches
        ax.step(front[x], front[y], where=where, color="tab:red", lw=1.5, label="Pareto front")
        ax.scatter(front[x], front[y], s=30, color="tab:red", zorder=3)
    for (_, row), marker in zip(frame[frame["source"] == "baseline"].iterrows(), "*DPXs^v", strict=False):
        if pd.notna(row.get(x)) and pd.notna(row.get(y)):
            ax.scatter(row[x], row[y], marker=marker, s=120, color="black", zorder=4, label=f"baseline: {row['name']}")
    ax.set_xlabel(axis_label(x, frame))
    ax.set_ylabel(axis_label(y, frame) + ("" if METRICS[y].direction == MAXIMIZE else ", lower is better"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out_dir, f"front_{x}")


def plot_hypervolume(series: pd.DataFrame, out_dir: Path, *, objectives: list[str]) -> list[Path]:
    fig, ax = subplots(figsize=(6, 3.5))
    ax.plot(series["number"], series["hypervolume"], drawstyle="steps-post", marker=".")
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"hypervolume ({', '.join(objectives)})")
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "hypervolume")


def plot_keep_rates(matrix: np.ndarray, rows: list[int], columns: list[str], out_dir: Path) -> list[Path]:
    fig, ax = subplots(figsize=(max(4.0, 0.45 * len(columns) + 2), max(2.5, 0.3 * len(rows) + 1.5)))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"trial {n}" for n in rows], fontsize=7)
    ax.set_title("keep rate per gated block (Pareto trials)")
    fig.colorbar(image, ax=ax, label="mean keep rate")
    return _save(fig, out_dir, "keep_rates")


def study_figures(storage: str, study_name: str | None, out_dir: str | Path) -> list[Path]:
    """Write every figure of a study to ``out_dir``; returns their paths."""
    study = load_study(open_storage(storage, must_exist=True), study_name)
    spec = study_spec(study)
    objectives, directions = list(spec["objectives"]), list(spec["directions"])
    frame = trials_frame(study)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    y = quality_axis(objectives)
    for x in front_metrics(frame, objectives):
        paths += plot_front(frame, x, out, y=y)
    trials = frame[frame["source"] == "trial"]
    series = hypervolume_series(trials, objectives, directions)
    if not series.empty:
        paths += plot_hypervolume(series, out, objectives=objectives)
    pareto = sorted(t.number for t in study.best_trials)
    matrix, rows, columns = keep_rate_matrix(trials, pareto)
    if pareto and columns:
        paths += plot_keep_rates(matrix, rows, columns, out)
    return paths
