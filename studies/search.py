"""The trial loop: sample a point, measure it, record everything as user attributes, stop at the budget.

Budget semantics: a run goes on until the study holds ``target`` COMPLETE trials in total
(infeasible ones included; failed ones do not count), counting trials of earlier runs and of other
workers. Each worker checks after each of its trials, so with N workers the study may end with up
to N-1 extra trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from dance3d.errors import Dance3dError
from dance3d.progress import progress_bar
from studies.objectives import Constraint, objective_values
from studies.space import Point, SearchSpace
from studies.storage import quiet_optuna

MeasurePoint = Callable[[Point], dict[str, Any]]
MAX_FAILURES_IN_A_ROW = 5


class TrialFailed(RuntimeError):
    """A trial could not be measured (recorded as FAIL; the study goes on)."""


def complete_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def make_objective(
    space: SearchSpace,
    measure_point: MeasurePoint,
    *,
    objectives: tuple[str, ...],
    constraints: tuple[Constraint, ...],
    worker_attrs: Mapping[str, Any] | None = None,
) -> Callable[[optuna.Trial], list[float]]:
    """Optuna objective: every measurement becomes a user attribute; constraints via ``set_constraint``."""

    def objective(trial: optuna.Trial) -> list[float]:
        for key, value in (worker_attrs or {}).items():
            trial.set_user_attr(key, value)
        point = space.suggest(trial)
        measurements = measure_point(point)
        record = {"knobs": point.knobs, "execution_mode": point.execution_mode, **measurements}
        for key, value in record.items():
            trial.set_user_attr(key, value)
        for constraint in constraints:
            trial.set_constraint(str(constraint), constraint.violation(measurements))
        values = objective_values(measurements, objectives)
        bad = [name for name, value in zip(objectives, values, strict=True) if not math.isfinite(value)]
        if bad:
            why = measurements.get("energy_status", "") if any(n.startswith("energy") for n in bad) else ""
            reason = f"objective(s) {', '.join(bad)} not measured{': ' + why if why else ''}"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason)
        return values

    return objective


def fail_stale(study: optuna.Study) -> None:
    """Mark trials of dead workers (heartbeat older than the grace period) FAIL and enqueue their retries."""
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)


def optimize_to_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], list[float]],
    *,
    target: int,
    progress: bool = True,
) -> int:
    """Run trials until ``study`` holds ``target`` complete trials; returns how many it holds."""
    fail_stale(study)
    done = complete_trials(study)
    if done >= target:
        return done
    failures: list[str] = []
    bar = progress_bar(total=target, initial=done, desc=f"study {study.study_name}", unit="trial", disable=not progress)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            failures.append(str(trial.user_attrs.get("fail_reason", "unknown")))
        else:
            failures.clear()
        complete = complete_trials(study)
        bar.update(min(complete, target) - bar.n)
        if complete >= target or len(failures) >= MAX_FAILURES_IN_A_ROW:
            study.stop()

    try:
        with quiet_optuna():
            study.optimize(objective, catch=(TrialFailed,), callbacks=[after_trial])
    finally:
        bar.close()
    if len(failures) >= MAX_FAILURES_IN_A_ROW:
        raise Dance3dError(f"{len(failures)} trials in a row failed; last: {failures[-1]}")
    return complete_trials(study)
