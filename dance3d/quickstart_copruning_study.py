"""Quickstart stage: an Optuna study of the co-pruned forecaster's two thresholds, and its Pareto front.

What ``dance3d study run --checkpoint runs/quick/copruning/model.pt`` does: each trial sets the data
and channel thresholds (no weights change), runs the forecaster in compact execution on the first
validation samples and measures its MSE, MAC fraction and batch-1 latency; dense and persistence
are measured as baselines. Resumable: the study tops up to its trial count in ``copruning_study.db``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from studies import StudyConfig, run_study, study_figures, study_status, trials_frame

HEADING = "Study: the co-pruned forecaster's thresholds (Optuna)"


@dataclass(frozen=True)
class CopruningStudySettings:
    """A short study: ``study`` (objectives, trials, execution) on the first ``samples`` validation samples."""

    study: StudyConfig = field(
        default_factory=lambda: StudyConfig(
            objectives=("mse", "mac_fraction", "latency_ms"),
            trials=10,
            startup_trials=5,
            execution_modes=("compact",),
            latency_warmup=1,
            latency_repeats=5,
            energy=False,
        )
    )
    samples: int = 64

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"copruning_study.samples must be >= 1, got {self.samples}")


@dataclass
class CopruningStudyResult:
    heading: str
    text: str
    table: pd.DataFrame
    figures: list[Path]


def run_copruning_study_stage(
    settings: CopruningStudySettings, checkpoint: Path, out_dir: Path
) -> CopruningStudyResult:
    """Run (or top up) the study of ``checkpoint``'s thresholds into ``out_dir``; the Pareto trials and fronts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out_dir / 'copruning_study.db').resolve()}"
    run = run_study(settings.study, checkpoint=checkpoint, storage=storage, split="val", limit=settings.samples)
    status = study_status(run.study)
    figures = [p for p in study_figures(storage, run.study_name, out_dir) if p.suffix == ".png"]
    baselines = status.baselines.set_index("name")
    pareto = status.pareto.dropna(axis=1, how="all").set_index("number")
    trials = trials_frame(run.study, baselines=False)
    fastest_ms = float(trials.loc[trials["state"] == "COMPLETE", "latency_ms"].min())
    speed = "faster" if fastest_ms < float(baselines.loc["dense", "latency_ms"]) else "slower"
    text = (
        f"`dance3d study run --checkpoint {checkpoint} --storage {storage}`: {run.complete_trials} complete "
        f"trials over the data and channel thresholds, objectives {', '.join(settings.study.objectives)} "
        f"(compact execution, batch 1) on {settings.samples} validation samples. Baselines: dense MSE "
        f"{baselines.loc['dense', 'mse']:.1f} at {baselines.loc['dense', 'latency_ms']:.2f} ms, persistence MSE "
        f"{baselines.loc['persistence', 'mse']:.1f}. The Pareto trials below trade MSE against MACs and "
        f"measured latency (fastest trial {fastest_ms:.2f} ms: {speed} than dense in compact execution); "
        "`dance3d study deploy --max-mse-increase F` writes the cheapest within F of dense."
    )
    return CopruningStudyResult(HEADING, text, pareto, figures)
