"""``run_study``: create or resume a study of a model's knobs (a dynamic classifier's logit offsets or a
co-pruned forecaster's thresholds) and run it to its budget."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch.utils.data import Dataset

from dance3d.copruning import CoprunedForecaster
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.dynamic import DynamicModel
from dance3d.errors import ConfigError
from dance3d.loading import LoadedModel, load_model
from dance3d.run_lock import pid_alive
from profiling.env import device_name
from studies.config import DEFAULT_STUDY_NAME, StudyConfig
from studies.copruned import build_threshold_space, copruned_point_measurer, measure_copruned_baselines
from studies.forecast import ForecastMeasurer, ForecastSet, forecast_data, load_forecast_set
from studies.measure import EnergySetup, EvalSet, Measurer, load_eval_set, setup_energy
from studies.objectives import (
    CLASSIFY,
    FORECAST,
    check_task,
    default_objectives,
    directions,
    needs_energy,
    parse_constraints,
    parse_objectives,
)
from studies.samplers import make_sampler
from studies.search import MeasurePoint, make_objective, optimize_to_budget
from studies.space import Point, SearchSpace, build_space, configure, dense_forward
from studies.storage import open_storage, quiet_optuna, retry_callback
from studies.table import BASELINES_ATTR, STUDY_ATTR


@dataclass
class StudyRun:
    """What ``run_study`` did: the study, where it lives, how many complete trials it holds."""

    study_name: str
    storage: str
    complete_trials: int
    study: optuna.Study


def load_searchable(checkpoint: str | Path) -> tuple[LoadedModel, str]:
    """A checkpoint a study can search, and its task: a dynamic (DANCE) classifier or a co-pruned forecaster."""
    loaded = load_model(checkpoint)
    if isinstance(loaded.model, DynamicModel):
        return loaded, CLASSIFY
    if isinstance(loaded.model, CoprunedForecaster):
        return loaded, FORECAST
    raise ConfigError(
        f"{checkpoint} is a {loaded.kind!r} checkpoint; a study needs a dynamic model (dance3d aap output) "
        "or a co-pruned forecaster (dance3d copruning output)"
    )


def resolve_objectives(config: StudyConfig, task: str) -> tuple[str, ...]:
    """``config.objectives``, or the task's defaults when it names none (energy added where a meter works)."""
    if config.objectives:
        return parse_objectives(config.objectives)
    meter_works = False
    if task == FORECAST and config.energy is not False:
        probe = setup_energy(wanted=True, required=False, device=config.device, estimate=None)
        meter_works = probe.meter is not None
        probe.close()
    return default_objectives(task, meter_works=meter_works)


def weights_fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes: which weights a study measured."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fail_dead_workers_trials(study: optuna.Study, *, max_retry: int) -> list[int]:
    """RUNNING trials whose worker process on this host is gone: FAIL now, not after the heartbeat grace
    period, and re-queued (up to ``max_retry`` times) so this run measures them. Returns their numbers."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"worker pid {pid} died")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:  # finished meanwhile (another process failed it first)
            continue
        with quiet_optuna():
            retry_callback(max_retry)(study, study._storage.get_trial(trial._trial_id))
        failed.append(trial.number)
    return failed


def worker_attrs(device: torch.device, energy: EnergySetup) -> dict[str, Any]:
    """Who measured a trial, on what: stored with every trial."""
    return {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "device": str(device),
        "device_name": device_name(device),
        "energy_label": energy.label,
        "env": {
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }


def _study_spec(
    config: StudyConfig,
    space: SearchSpace,
    objectives,
    constraints,
    *,
    checkpoint: str | Path,
    weights_sha256: str,
    eval_set: EvalSet | ForecastSet,
    task: str,
) -> dict[str, Any]:
    """What the study was made with: compared on resume (objectives, constraints, space) or kept for reports."""
    return {
        "task": task,
        "objectives": list(objectives),
        "directions": directions(objectives),
        "constraints": [str(c) for c in constraints],
        "space": space.describe(),
        "checkpoint": str(checkpoint),
        "weights_sha256": weights_sha256,
        "num_clips": len(eval_set),
        "config": asdict(config),
    }


def open_or_create(
    storage, *, study_name: str, spec: dict[str, Any], sampler: optuna.samplers.BaseSampler
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it and check it was made with the same objectives, constraints and space."""
    try:
        with quiet_optuna():
            study = optuna.create_study(
                storage=storage, study_name=study_name, directions=spec["directions"], sampler=sampler
            )
            study.set_metric_names(spec["objectives"])
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        _check_resumable(study, spec)
        return study, False
    study.set_user_attr(STUDY_ATTR, spec)
    return study, True


def _check_resumable(study: optuna.Study, spec: dict[str, Any], *, wait_s: float = 10.0) -> None:
    """Refuse a study made with other settings (waits briefly for a worker that is creating it)."""
    deadline = time.monotonic() + wait_s
    while (stored := study.user_attrs.get(STUDY_ATTR)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if stored is None:
        raise ConfigError(f"study {study.study_name!r} exists but was not made by dance3d; use another --study-name")
    for key in ("objectives", "constraints", "space", "weights_sha256"):
        if key in stored and stored.get(key) != spec[key]:
            raise ConfigError(
                f"study {study.study_name!r} was created with other {key} ({stored.get(key)}); "
                f"this run asks for {spec[key]}: use another --study-name"
            )


def point_measurer(model: DynamicModel, measurer: Measurer) -> MeasurePoint:
    """Measure ``model`` at a point of its search space."""

    def measure_point(point: Point) -> dict[str, Any]:
        return measurer.measure(
            configure(model, point),
            module=model,
            batch_size=point.batch_size,
            clip_stats=model.clip_stats,
            dense_macs=float(model.dense_macs),
        )

    return measure_point


def measure_baselines(
    loaded: LoadedModel,
    measurer: Measurer,
    point: Point,
    baseline_checkpoints: Mapping[str, str | Path],
) -> dict[str, dict[str, Any]]:
    """The dense model (everything kept) and any static checkpoints, measured like the trials."""
    model = loaded.model
    out = {
        "dense": measurer.measure(
            dense_forward(model, point.execution_mode),
            module=model,
            batch_size=point.batch_size,
            clip_stats=model.clip_stats,
            dense_macs=float(model.dense_macs),
        )
    }
    dense_macs = out["dense"]["macs"]
    for name, path in baseline_checkpoints.items():
        other_loaded = load_model(path)
        other = other_loaded.model.to(measurer.device).eval()
        stats = other.clip_stats if isinstance(other, DynamicModel) else None
        out[name] = measurer.measure(
            other, module=other, batch_size=point.batch_size, clip_stats=stats, dense_macs=dense_macs
        )
        out[name]["checkpoint"] = str(other_loaded.path)
    for values in out.values():
        values["execution_mode"] = point.execution_mode
    return out


def run_study(
    config: StudyConfig,
    *,
    checkpoint: str | Path,
    storage: str = "sqlite:///study.db",
    study_name: str = DEFAULT_STUDY_NAME,
    data: DataConfig | None = None,
    split: str = "val",
    limit: int | None = None,
    dataset: Dataset | None = None,
    baseline_checkpoints: Mapping[str, str | Path] | None = None,
    progress: bool = True,
) -> StudyRun:
    """Create or resume ``study_name`` in ``storage`` and run it until it holds ``config.trials`` complete trials.

    ``checkpoint``: a dynamic classifier (knobs: logit offsets, quality: ``accuracy``) or a co-pruned
    forecaster (knobs: thresholds, quality: ``mse``). Clips (forecast samples): ``dataset`` if
    given, else ``split`` of ``data`` (default: the checkpoint's data settings), limited to the first
    ``limit``. Baselines are measured once per study (by the worker that
    creates it) and stored as the study user attribute ``baselines``.
    """
    loaded, task = load_searchable(checkpoint)
    objectives = resolve_objectives(config, task)
    constraints = parse_constraints(config.constraints)
    check_task(objectives, constraints, task)
    energy_needed = needs_energy(objectives, constraints)
    if config.energy is False and energy_needed:
        raise ConfigError("energy is an objective or constraint, but energy measurement is switched off")
    space = build_threshold_space(loaded.model, config) if task == FORECAST else build_space(loaded.model, config)
    device = torch.device(config.device)
    eval_set = _eval_set(loaded, task, data=data, split=split, limit=limit, dataset=dataset)
    if max(config.batch_sizes) > len(eval_set):
        raise ConfigError(f"batch size {max(config.batch_sizes)} is larger than the {len(eval_set)} validation clips")
    energy = setup_energy(
        wanted=bool(config.energy), required=energy_needed, device=config.device, estimate=config.energy_estimate
    )
    try:
        rdb = open_storage(
            storage,
            heartbeat_interval_s=config.heartbeat_interval_s,
            grace_period_s=config.grace_period_s,
            max_retry=config.max_retry,
        )
        fingerprint = weights_fingerprint(loaded.checkpoint["state_dict"])
        spec = _study_spec(
            config,
            space,
            objectives,
            constraints,
            checkpoint=loaded.path,
            weights_sha256=fingerprint,
            eval_set=eval_set,
            task=task,
        )
        study, created = open_or_create(rdb, study_name=study_name, spec=spec, sampler=make_sampler(config))
        loaded.model.to(device).eval()
        settings = dict(
            device=device,
            eval_batch_size=config.eval_batch_size,
            latency_warmup=config.latency_warmup,
            latency_repeats=config.latency_repeats,
            energy=energy,
        )
        first = Point({}, config.execution_modes[0], config.batch_sizes[0])
        measure_point, measure_base = _measurements(
            loaded, task, eval_set, first=first, baseline_checkpoints=baseline_checkpoints or {}, **settings
        )
        if created or BASELINES_ATTR not in study.user_attrs:
            study.set_user_attr(BASELINES_ATTR, measure_base())
        objective = make_objective(
            space,
            measure_point,
            objectives=objectives,
            constraints=constraints,
            worker_attrs=worker_attrs(device, energy),
        )
        fail_dead_workers_trials(study, max_retry=config.max_retry)
        done = optimize_to_budget(study, objective, target=config.trials, progress=progress)
    finally:
        energy.close()
    return StudyRun(study_name=study_name, storage=storage, complete_trials=done, study=study)


def _measurements(
    loaded: LoadedModel,
    task: str,
    eval_set: EvalSet | ForecastSet,
    *,
    first: Point,
    baseline_checkpoints: Mapping[str, str | Path],
    device: torch.device,
    **settings: Any,
) -> tuple[MeasurePoint, Callable[[], dict[str, dict[str, Any]]]]:
    """How this worker measures a point of the space, and the study's baselines (at ``first``'s mode and batch)."""
    if task == FORECAST:
        forecast_measurer = ForecastMeasurer(data=eval_set.to(device), device=device, **settings)
        return (
            copruned_point_measurer(loaded.model, forecast_measurer),
            partial(measure_copruned_baselines, loaded, forecast_measurer, first, baseline_checkpoints),
        )
    clips = EvalSet(eval_set.clips.to(device), eval_set.labels.to(device))
    measurer = Measurer(eval_set=clips, device=device, **settings)
    return (
        point_measurer(loaded.model, measurer),
        partial(measure_baselines, loaded, measurer, first, baseline_checkpoints),
    )


def _eval_set(
    loaded: LoadedModel,
    task: str,
    *,
    data: DataConfig | None,
    split: str,
    limit: int | None,
    dataset: Dataset | None,
) -> EvalSet | ForecastSet:
    """The validation clips (a classifier's) or samples (a forecaster's), stacked once."""
    if task == FORECAST:
        if dataset is None:
            dataset = build_dataset(forecast_data(loaded, data), split, classes=loaded.classes)
        return load_forecast_set(dataset, limit=limit)
    if dataset is None:
        data = data or loaded.data
        data = data.with_clip_shape(loaded.model.clip_shape)
        dataset = build_dataset(data, split, classes=loaded.classes)
    return load_eval_set(dataset, limit=limit)
