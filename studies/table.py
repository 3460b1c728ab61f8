"""A study as one tidy table (one row per trial and per baseline), and its export to Parquet or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from dance3d.errors import ConfigError
from profiling.sweep import write_table
from studies.objectives import is_feasible, parse_constraints

STUDY_ATTR, BASELINES_ATTR = "dance3d", "baselines"
_NESTED = ("knobs", "keep_rates", "env")


def study_spec(study: optuna.Study) -> dict[str, Any]:
    """What the study was created with (objectives, directions, constraints, space, ...)."""
    spec = study.user_attrs.get(STUDY_ATTR)
    if spec is None:
        raise ConfigError(f"study {study.study_name!r} was not made by dance3d (no {STUDY_ATTR!r} attribute)")
    return spec


def _flat(attrs: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in attrs.items() if k not in _NESTED}
    row.update({f"knob.{k}": v for k, v in attrs.get("knobs", {}).items()})
    row.update({f"keep.{k}": v for k, v in attrs.get("keep_rates", {}).items()})
    return row


def _trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    constraints = trial.constraints
    duration = trial.duration.total_seconds() if trial.duration is not None else float("nan")
    return {
        "source": "trial",
        "name": f"trial{trial.number}",
        "number": trial.number,
        "state": trial.state.name,
        "feasible": is_feasible(constraints),
        "retry_of": trial.system_attrs.get("failed_trial"),
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "duration_s": duration,
        **{f"violation.{k}": v for k, v in constraints.items()},
        **_flat(trial.user_attrs),
    }


def _baseline_rows(study: optuna.Study, spec: dict[str, Any]) -> list[dict[str, Any]]:
    constraints = parse_constraints(spec.get("constraints", []))
    rows = []
    for name, attrs in study.user_attrs.get(BASELINES_ATTR, {}).items():
        violations = {str(c): c.violation(attrs) for c in constraints}
        rows.append(
            {
                "source": "baseline",
                "name": name,
                "state": "BASELINE",
                "feasible": is_feasible(violations),
                **{f"violation.{k}": v for k, v in violations.items()},
                **_flat(attrs),
            }
        )
    return rows


def trials_frame(study: optuna.Study, *, baselines: bool = True) -> pd.DataFrame:
    """One row per trial (any state) and, with ``baselines``, one per baseline; units in column names."""
    spec = study_spec(study)
    rows = [_trial_row(t) for t in study.get_trials(deepcopy=False)]
    if baselines:
        rows += _baseline_rows(study, spec)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["source", "name", "number", "state", "feasible"])
    frame["number"] = frame["number"].astype("Int64")
    frame["retry_of"] = frame.get("retry_of", pd.Series(index=frame.index, dtype="object")).astype("Int64")
    frame["feasible"] = frame["feasible"].astype(bool)
    return frame


def export_trials(study: optuna.Study, out: str | Path) -> Path:
    """Write :func:`trials_frame` to ``out`` (``.parquet`` or ``.csv``), atomically."""
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"export path must end in .parquet or .csv, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(trials_frame(study), out)
    return out
