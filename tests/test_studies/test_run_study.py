"""run_study on a tiny dynamic checkpoint: stored attributes, baselines, resume, Pareto set, export, figures."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from optuna.trial import TrialState
from study_helpers import fast_config

from dance3d.errors import ConfigError
from studies import export_trials, format_status, pareto_mask, run_study, study_figures, study_status, trials_frame

CONSTRAINT = "mac_fraction<=0.9"


@pytest.fixture(scope="module")
def study_run(dynamic_checkpoint, dense_checkpoint, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'study.db'}"
    config = fast_config(trials=4, constraints=(CONSTRAINT,))
    baselines = {"static": dense_checkpoint}
    run = run_study(
        config, checkpoint=dynamic_checkpoint, storage=url, limit=8, baseline_checkpoints=baselines, progress=False
    )
    return url, run


def test_each_trial_stores_its_configuration_and_measurements(study_run):
    _, run = study_run
    trials = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert run.complete_trials == len(trials) == 4
    for trial in trials:
        attrs = trial.user_attrs
        assert trial.values == [attrs["accuracy"], attrs["mac_fraction"]]
        assert attrs["knobs"] == trial.params and len(attrs["knobs"]) == 4
        assert (
            attrs["mac_fraction_p10"] <= attrs["mac_fraction_p50"] <= attrs["mac_fraction_p90"] <= 1.05
        )  # controller cost included
        assert {"g0.frame_keep", "g0.channel_keep", "g3.tile_keep"} <= set(attrs["keep_rates"])
        assert attrs["latency_ms"] > 0 and attrs["batch_size"] == 1 and attrs["execution_mode"] == "simulate"
        assert attrs["energy_status"] == "not requested" and attrs["energy_label"] == "none"
        assert attrs["device"] == "cpu" and attrs["worker"].endswith(f":{os.getpid()}")
        assert attrs["num_clips"] == 8 and "torch" in attrs["env"]
        assert trial.constraints[CONSTRAINT] == pytest.approx(attrs["mac_fraction"] - 0.9)


def test_baselines_are_measured_once_with_the_same_objectives(study_run):
    _, run = study_run
    baselines = run.study.user_attrs["baselines"]
    assert set(baselines) == {"dense", "static"}
    assert baselines["dense"]["mac_fraction"] == pytest.approx(1.0)
    assert set(baselines["dense"]["keep_rates"].values()) == {1.0}
    assert baselines["static"]["mac_fraction"] == pytest.approx(1.0, rel=0.05)  # a dense tiny-test, counted
    assert baselines["static"]["checkpoint"].endswith("model.pt")
    spec = run.study.user_attrs["dance3d"]
    assert spec["objectives"] == ["accuracy", "mac_fraction"] and spec["constraints"] == [CONSTRAINT]
    assert [k["name"] for k in spec["space"]["knobs"]][0] == "stage0.frames_offset"


def test_pareto_set_matches_optuna_best_trials(study_run):
    _, run = study_run
    frame = trials_frame(run.study, baselines=False)
    assert 0 < frame["feasible"].sum() < len(frame)  # the seeded study has feasible and infeasible trials
    ok = frame[(frame["state"] == "COMPLETE") & frame["feasible"]]
    mask = pareto_mask(ok[["accuracy", "mac_fraction"]].to_numpy(float), ["maximize", "minimize"])
    assert sorted(ok["number"][mask]) == sorted(t.number for t in run.study.best_trials)
    status = study_status(run.study)
    assert status.counts["COMPLETE"] == 4 and sorted(status.pareto["number"]) == sorted(ok["number"][mask])
    assert "complete 4" in format_status(status) and "baselines:" in format_status(status)


def test_export_has_tidy_columns_with_units(study_run, tmp_path):
    _, run = study_run
    for name in ("trials.parquet", "trials.csv"):
        path = export_trials(run.study, tmp_path / name)
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        assert len(table) == 4 + 2  # trials and baselines
        expected = {"source", "name", "number", "state", "feasible", "accuracy", "mac_fraction", "macs"}
        expected |= {"latency_ms", "energy_j", "meter", "knob.stage0.frames_offset", "keep.g0.frame_keep"}
        expected |= {f"violation.{CONSTRAINT}", "mac_fraction_p90", "worker", "duration_s"}
        assert expected <= set(table.columns)
        assert sorted(table["source"].unique()) == ["baseline", "trial"]
    with pytest.raises(ConfigError, match=r"\.parquet or \.csv"):
        export_trials(run.study, tmp_path / "trials.xlsx")


def test_figures_are_written_from_the_storage(study_run, tmp_path):
    url, run = study_run
    paths = study_figures(url, run.study_name, tmp_path / "fig")
    names = {p.name for p in paths}
    for stem in ("front_mac_fraction", "front_latency_ms", "hypervolume", "keep_rates"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_study_resumes_to_its_total_budget_and_refuses_other_objectives(dynamic_checkpoint, tmp_path):
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    first = run_study(fast_config(trials=2), checkpoint=dynamic_checkpoint, storage=url, limit=4, progress=False)
    again = run_study(fast_config(trials=2), checkpoint=dynamic_checkpoint, storage=url, limit=4, progress=False)
    assert first.complete_trials == again.complete_trials == 2 and len(again.study.trials) == 2  # nothing re-run
    more = run_study(fast_config(trials=3), checkpoint=dynamic_checkpoint, storage=url, limit=4, progress=False)
    assert more.complete_trials == 3 and [t.number for t in more.study.trials] == [0, 1, 2]
    with pytest.raises(ConfigError, match="created with other objectives"):
        run_study(
            fast_config(objectives=("accuracy", "latency_ms")), checkpoint=dynamic_checkpoint, storage=url, limit=4
        )
