"""``study status``: trial counts by state and the current Pareto set as a table."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from studies.table import study_spec, trials_frame

PARETO_COLUMNS = ("number", "accuracy", "mse", "mac_fraction", "latency_ms", "energy_j", "execution_mode", "batch_size")


@dataclass
class StudyStatus:
    study_name: str
    objectives: list[str]
    constraints: list[str]
    counts: dict[str, int]
    pareto: pd.DataFrame
    baselines: pd.DataFrame


def study_status(study: optuna.Study) -> StudyStatus:
    """Counts of every trial state and the Pareto set (``study.best_trials``; feasible trials only)."""
    spec = study_spec(study)
    frame = trials_frame(study)
    trials = frame[frame["source"] == "trial"]
    counts = {state.name: int((trials["state"] == state.name).sum()) for state in TrialState}
    numbers = sorted(t.number for t in study.best_trials)
    knob_columns = [c for c in frame.columns if c.startswith("knob.")]
    wanted = list(dict.fromkeys([*PARETO_COLUMNS[:1], *spec["objectives"], *PARETO_COLUMNS[1:], *knob_columns]))
    columns = [c for c in wanted if c in frame.columns]
    pareto = trials[trials["number"].isin(numbers)][columns].sort_values(spec["objectives"][0])
    baseline_columns = ["name", *(c for c in columns[1:] if not c.startswith("knob."))]
    baselines = frame[frame["source"] == "baseline"][baseline_columns]
    return StudyStatus(
        study_name=study.study_name,
        objectives=list(spec["objectives"]),
        constraints=list(spec["constraints"]),
        counts=counts,
        pareto=pareto.reset_index(drop=True),
        baselines=baselines.reset_index(drop=True),
    )


def _table(frame: pd.DataFrame) -> str:
    """Rows as text, leaving out columns nothing was measured in (e.g. energy without a meter)."""
    if frame.empty:
        return "  (none)"
    return frame.dropna(axis=1, how="all").to_string(index=False, float_format=lambda v: f"{v:.4g}")


def format_status(status: StudyStatus) -> str:
    """Plain-text report for the terminal."""
    lines = [
        f"study {status.study_name}: objectives {', '.join(status.objectives)}"
        + (f"; constraints {', '.join(status.constraints)}" if status.constraints else ""),
        "trials: " + ", ".join(f"{state.lower()} {n}" for state, n in status.counts.items()),
        f"Pareto set ({len(status.pareto)} trials):",
        _table(status.pareto),
    ]
    if len(status.baselines):
        lines += ["baselines:", _table(status.baselines)]
    return "\n".join(lines)
