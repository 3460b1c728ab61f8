"""Samplers. Default: multi-objective TPE.

Why TPE by default: studies here have budgets of tens of trials (each trial runs the validation
set and times the model). TPE models the good and bad regions of the whole history after a few
random start-up trials (``n_startup_trials``), so it improves from trial ~10 on, and it handles
constraints (``trial.set_constraint``). NSGA-II needs several generations of ``population_size``
trials before selection helps, so it suits budgets of hundreds. ``constant_liar`` keeps
parallel workers from proposing the same point while a trial is running.
"""

from __future__ import annotations

import optuna

from studies.config import StudyConfig
from studies.storage import quiet_optuna


def make_sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    """``tpe`` (default), ``nsga2`` or ``random``, seeded with ``config.seed``."""
    with quiet_optuna():
        if config.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=config.population_size, seed=config.seed)
        if config.sampler == "random":
            return optuna.samplers.RandomSampler(seed=config.seed)
        return optuna.samplers.TPESampler(
            seed=config.seed, multivariate=True, constant_liar=True, n_startup_trials=config.startup_trials
        )
