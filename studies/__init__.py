"""studies: Optuna searches over a model's run-time pruning knobs, Pareto analysis and plots.

The knobs are a dynamic (DANCE) classifier's logit offsets, scored by ``accuracy``, or a co-pruned
forecaster's thresholds, scored by ``mse``.

from studies import StudyConfig, run_study, study_figures
run = run_study(StudyConfig(objectives=("accuracy", "mac_fraction"), trials=20),
                checkpoint="runs/aap/model.pt", storage="sqlite:///study.db", limit=200)
paths = study_figures("sqlite:///study.db", run.study_name, "figures/")
deploy_trial(run.study, pick_trial(run.study, max_accuracy_drop=0.01).number, "runs/deployed/model.pt")
"""

from studies.config import DEFAULT_STUDY_NAME, StudyConfig
from studies.deploy import DeployedTrial, deploy_trial, pick_forecast_trial, pick_trial
from studies.objectives import METRICS, Constraint, parse_constraint, parse_constraints, parse_objectives
from studies.pareto import hypervolume, hypervolume_series, keep_rate_matrix, pareto_mask
from studies.plots import study_figures
from studies.runner import StudyRun, run_study
from studies.status import format_status, study_status
from studies.storage import load_study, open_storage
from studies.table import export_trials, trials_frame

__all__ = [
    "DEFAULT_STUDY_NAME",
    "METRICS",
    "Constraint",
    "DeployedTrial",
    "StudyConfig",
    "StudyRun",
    "deploy_trial",
    "export_trials",
    "format_status",
    "hypervolume",
    "hypervolume_series",
    "keep_rate_matrix",
    "load_study",
    "open_storage",
    "pareto_mask",
    "parse_constraint",
    "parse_constraints",
    "parse_objectives",
    "pick_forecast_trial",
    "pick_trial",
    "run_study",
    "study_figures",
    "study_status",
    "trials_frame",
]
