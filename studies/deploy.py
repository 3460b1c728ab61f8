"""``study deploy``: a study trial's knobs written into a checkpoint that runs at that operating point.

The written checkpoint is the study's checkpoint with the trial's knob values in its spec (a
dynamic model's logit offsets, ``dance3d.dynamic.checkpoint``; a co-pruned forecaster's
thresholds, ``dance3d.copruning.knobs``), plus where they came from and what the trial measured, so
``dance3d eval`` / ``profile`` / ``sweep`` run the chosen trade-off without further flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dance3d.copruning.checkpoint import save_with_thresholds
from dance3d.copruning.knobs import apply_thresholds
from dance3d.dynamic import apply_knobs
from dance3d.dynamic.checkpoint import save_with_knobs
from dance3d.errors import ConfigError
from studies.objectives import FORECAST, METRICS, is_feasible, quality_metric
from studies.runner import load_searchable, weights_fingerprint
from studies.table import BASELINES_ATTR, study_spec

CONTEXT_KEYS = ("execution_mode", "batch_size", "num_clips", "device_name", "energy_source")
"""Kept with the trial's metrics: how and where they were measured."""


@dataclass
class DeployedTrial:
    """What ``deploy_trial`` wrote: the checkpoint, the trial, its knobs and its measurements."""

    path: Path
    study_name: str
    number: int
    knobs: dict[str, float]
    feasible: bool
    measured: dict[str, Any]  # the trial's metrics (accuracy, mac_fraction, ...), execution mode, batch size


def find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The COMPLETE trial ``number`` of ``study``, or a clear error."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        held = f"trials 0..{max(trials)}" if trials else "no trials"
        raise ConfigError(f"study {study.study_name!r} has no trial {number} (it holds {held})")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise ConfigError(
            f"trial {number} of study {study.study_name!r} is {trial.state.name}, not COMPLETE: it has no measurements"
        )
    return trial


def most_accurate(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The most accurate of ``trials`` (the one with fewer MACs on a tie), or None if there are none."""
    return max(trials, key=lambda t: (t.user_attrs["accuracy"], -t.user_attrs["mac_fraction"]), default=None)


def pick_trial(study: optuna.Study, *, max_accuracy_drop: float) -> optuna.trial.FrozenTrial:
    """The Pareto trial with the lowest first cost objective (e.g. ``energy_j``; ``mac_fraction`` if the study
    has none) among those within ``max_accuracy_drop`` of the dense baseline's accuracy."""
    if not 0.0 <= max_accuracy_drop <= 1.0:
        raise ConfigError(f"the accuracy drop is a fraction in [0, 1] (0.01 = 1 point), got {max_accuracy_drop}")
    spec = study_spec(study)
    if quality_metric(spec["objectives"]) != "accuracy":
        raise ConfigError(
            f"study {study.study_name!r} scores a forecaster by mse, not accuracy: pick with --max-mse-increase "
            "or --trial"
        )
    cost = next((name for name in spec["objectives"] if name != "accuracy"), "mac_fraction")
    dense = study.user_attrs.get(BASELINES_ATTR, {}).get("dense")
    if dense is None:
        raise ConfigError(f"study {study.study_name!r} has no dense baseline yet (run it once more); pick with --trial")
    dense_accuracy = dense["accuracy"]
    pareto = study.best_trials
    close = [t for t in pareto if t.user_attrs["accuracy"] >= dense_accuracy - max_accuracy_drop]
    if not close:
        best = most_accurate(pareto)
        most = f"; the most accurate is trial {best.number} at {best.user_attrs['accuracy']:.4f}" if best else ""
        raise ConfigError(
            f"no Pareto trial of study {study.study_name!r} is within {max_accuracy_drop} of the dense model's "
            f"accuracy {dense_accuracy:.4f}{most}"
        )
    return min(close, key=lambda t: (t.user_attrs[cost], -t.user_attrs["accuracy"], t.number))


def pick_forecast_trial(study: optuna.Study, *, max_mse_increase: float) -> optuna.trial.FrozenTrial:
    """The Pareto trial with the lowest first cost objective (``mac_fraction`` if the study has none) among
    those whose MSE is at most ``(1 + max_mse_increase)`` x the dense baseline's (0.05: 5 % above it)."""
    if not (math.isfinite(max_mse_increase) and max_mse_increase >= 0.0):
        raise ConfigError(f"the MSE increase is a fraction >= 0 (0.05 = 5 % above dense), got {max_mse_increase}")
    spec = study_spec(study)
    if quality_metric(spec["objectives"]) != "mse":
        raise ConfigError(
            f"study {study.study_name!r} scores a classifier by accuracy, not mse: pick with --max-accuracy-drop"
        )
    cost = next((name for name in spec["objectives"] if name != "mse"), "mac_fraction")
    dense = study.user_attrs.get(BASELINES_ATTR, {}).get("dense")
    if dense is None:
        raise ConfigError(f"study {study.study_name!r} has no dense baseline yet (run it once more); pick with --trial")
    bound = dense["mse"] * (1.0 + max_mse_increase)
    pareto = study.best_trials
    close = [t for t in pareto if t.user_attrs["mse"] <= bound]
    if not close:
        best = min(pareto, key=lambda t: t.user_attrs["mse"], default=None)
        lowest = f"; the lowest is trial {best.number} at {best.user_attrs['mse']:.4g}" if best else ""
        raise ConfigError(
            f"no Pareto trial of study {study.study_name!r} has an MSE within {max_mse_increase:g} x above the "
            f"dense model's {dense['mse']:.4g}{lowest}"
        )
    return min(close, key=lambda t: (t.user_attrs[cost], t.user_attrs["mse"], t.number))


def deploy_trial(
    study: optuna.Study, number: int, out: str | Path, *, checkpoint: str | Path | None = None
) -> DeployedTrial:
    """Write ``out``: the study's checkpoint (or ``checkpoint``: that model elsewhere) with trial ``number``'s knobs."""
    spec = study_spec(study)
    trial = find_trial(study, number)
    source = Path(checkpoint or spec["checkpoint"])
    if checkpoint is None and not source.is_file():
        raise ConfigError(f"the study's checkpoint {source} is not here; pass the same model with --checkpoint")
    loaded, task = load_searchable(source)
    recorded = spec.get("weights_sha256")
    if recorded is not None and weights_fingerprint(loaded.checkpoint["state_dict"]) != recorded:
        raise ConfigError(
            f"{source} is not the model study {study.study_name!r} searched (its weights differ from those the "
            f"study measured); deploy the study's own checkpoint, or run a study of this one"
        )
    knobs = {name: float(value) for name, value in trial.user_attrs["knobs"].items()}
    try:
        if task == FORECAST:
            apply_thresholds(loaded.model, knobs)  # over the trained thresholds: unsearched ones keep theirs
        else:
            apply_knobs(loaded.model, knobs)
    except ConfigError as error:
        raise ConfigError(f"{source} is not the model the study searched: {error}") from error
    feasible = is_feasible(trial.constraints)
    measured = {k: v for k, v in trial.user_attrs.items() if k in METRICS or k in CONTEXT_KEYS}
    provenance = {
        "study_name": study.study_name,
        "number": number,
        "source_checkpoint": str(loaded.path),
        "feasible": feasible,
        "measured": measured,
    }
    save = save_with_thresholds if task == FORECAST else save_with_knobs
    path = save(loaded.model, loaded.checkpoint, source=source, out=out, study_trial=provenance)
    return DeployedTrial(path, study.study_name, number, knobs, feasible, measured)
