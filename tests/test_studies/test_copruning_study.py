"""Studies of a co-pruned forecaster's thresholds: knobs, the mse objective, resume, plot, deploy, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import studies.measure
from dance3d.checkpoint import load_checkpoint
from dance3d.cli.forecast_eval import checkpoint_data
from dance3d.cli.main import main
from dance3d.copruning import CoprunedSimVP
from dance3d.copruning.knobs import apply_thresholds, current_thresholds, threshold_knobs, with_thresholds
from dance3d.data.registry import build_dataset
from dance3d.errors import ConfigError
from dance3d.forecast.evaluation import evaluate_forecast
from dance3d.loading import load_model
from profiling.meters.select import MeterSelection
from studies import StudyConfig, deploy_trial, pick_forecast_trial, pick_trial, run_study, study_figures, trials_frame
from studies.table import BASELINES_ATTR, study_spec

DATA = ["--set", "data.forecast.num_train=8", "--set", "data.forecast.num_val=6", "--set", "data.forecast.num_test=4",
        "--set", "data.forecast.height=16", "--set", "data.forecast.width=16"]  # fmt: skip
FAST_TRAIN = ["--epochs", "1", "--batch-size", "8", "--threads", "1"]
FAST = dict(latency_warmup=0, latency_repeats=1, eval_batch_size=8, heartbeat_interval_s=1, grace_period_s=2)
CLI_FAST = ["--repeats", "1", "--set", "study.latency_warmup=0", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def copruned_checkpoint(tmp_path_factory) -> str:
    """A tiny co-pruned simvp-test (1 epoch of training, 1 of co-pruning, on 8 samples of 16x16)."""
    root = tmp_path_factory.mktemp("copruned")
    settings = ["--set", "train.num_workers=0", "--set", "train.progress=false", *DATA, *FAST_TRAIN]
    assert main(["train", "--task", "forecast", "--model", "simvp-test", "--out", str(root / "dense"), *settings]) == 0
    args = ["copruning", "--checkpoint", str(root / "dense" / "model.pt"), "--out", str(root / "cp"),
            "--tile-size", "4", "--format", "json", *FAST_TRAIN]  # fmt: skip
    assert main(args) == 0
    return str(root / "cp" / "model.pt")


@pytest.fixture
def no_meter(monkeypatch):
    """This machine may or may not have RAPL; make 'no meter works' certain."""
    monkeypatch.setattr(studies.measure, "select_meter", lambda device: MeterSelection(None, {"rapl": "no access"}))


def _val_inputs(loaded) -> torch.Tensor:
    data = checkpoint_data(loaded, argparse.Namespace(data=None, overrides=[]))
    dataset = build_dataset(data, "val", classes=loaded.classes)
    return torch.stack([dataset[i]["inputs"] for i in range(len(dataset))])


def test_knobs_are_the_two_thresholds_and_apply_exactly(copruned_checkpoint):
    loaded = load_model(copruned_checkpoint)
    model: CoprunedSimVP = loaded.model
    trained = dict(current_thresholds(model))
    assert trained == {"data_threshold": 0.5, "channel_threshold": 0.2}  # CopruneConfig's defaults, as trained
    knobs = threshold_knobs(model.config)
    assert [(k.name, k.low, k.high, k.default) for k in knobs] == [
        ("data_threshold", 0.01, 0.99, 0.5), ("channel_threshold", 0.01, 0.99, 0.2)]  # fmt: skip
    inputs = _val_inputs(loaded)
    with torch.no_grad():
        reference = model(inputs).clone()
        reference_macs = model.last_macs.clone()
        apply_thresholds(model, {"data_threshold": 0.97, "channel_threshold": 0.9})
        fewer = model(inputs)
        assert model.last_macs.sum() < reference_macs.sum()  # higher thresholds keep less
        assert not torch.equal(fewer, reference)
        apply_thresholds(model, trained)  # back at the trained values: the checkpoint's outputs, exactly
        assert torch.equal(model(inputs), reference) and torch.equal(model.last_macs, reference_macs)
        apply_thresholds(model, {"data_threshold": 0.02})  # the other knob keeps its value
        assert model.config.channel_threshold == 0.2 and model(inputs).shape == reference.shape
        assert model.last_decisions.position_fraction().min() > 0.9  # almost every tile kept
    weights = load_checkpoint(copruned_checkpoint).state_dict
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"data_threshold": 1.0}, "knob data_threshold must be in (0, 1), got 1.0"),
        ({"channel_threshold": 0.0}, "knob channel_threshold must be in (0, 1), got 0.0"),
        ({"data_threshold": float("nan")}, "knob data_threshold must be in (0, 1), got nan"),
        ({"data_threshold": "x"}, "knob data_threshold must be a number in (0, 1), got 'x'"),
        ({"tile_size": 0.5}, "unknown knob(s) tile_size; this co-pruned model has data_threshold, channel_threshold"),
    ],
)
def test_bad_knob_values_are_config_errors(copruned_checkpoint, values, message):
    model = load_model(copruned_checkpoint).model
    before = model.config
    with pytest.raises(ConfigError) as error:
        apply_thresholds(model, values)
    assert message in str(error.value)
    assert model.config is before  # nothing applied


def test_a_switched_off_mask_has_no_knob(copruned_checkpoint):
    config = load_model(copruned_checkpoint).model.config
    from dataclasses import replace

    data_only = replace(config, model_mask=False)
    assert [k.name for k in threshold_knobs(data_only)] == ["data_threshold"]
    with pytest.raises(ConfigError, match="channel_threshold: its mask is off in this model"):
        with_thresholds(data_only, {"channel_threshold": 0.3})
    with pytest.raises(ConfigError, match="0 < low < high < 1"):
        threshold_knobs(config, low=0.0, high=0.5)


@pytest.fixture(scope="module")
def copruned_study(copruned_checkpoint, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('study') / 'study.db'}"
    config = StudyConfig(trials=4, energy=False, **FAST)
    return run_study(config, checkpoint=copruned_checkpoint, storage=url, progress=False), url


def test_a_study_searches_the_thresholds_against_mse(copruned_study, copruned_checkpoint):
    run, _ = copruned_study
    spec = study_spec(run.study)
    assert spec["task"] == "forecast" and spec["objectives"] == ["mse", "mac_fraction", "latency_ms"]
    assert spec["directions"] == ["minimize", "minimize", "minimize"]
    assert [k["name"] for k in spec["space"]["knobs"]] == ["data_threshold", "channel_threshold"]
    frame = trials_frame(run.study)
    trials = frame[(frame["source"] == "trial") & (frame["state"] == "COMPLETE")]
    assert len(trials) == 4 and (trials["num_clips"] == 6).all()
    assert (trials["mse"] > 0).all() and (trials["latency_ms"] > 0).all()
    assert ((trials["mac_fraction"] > 0) & (trials["mac_fraction"] < 1.2)).all()
    assert trials["knob.data_threshold"].between(0.01, 0.99).all()
    # a trial's mse is what `dance3d eval` reports for the model at that trial's thresholds
    row = trials.iloc[0]
    loaded = load_model(copruned_checkpoint)
    apply_thresholds(loaded.model, {"data_threshold": row["knob.data_threshold"],
                                    "channel_threshold": row["knob.channel_threshold"]})  # fmt: skip
    dataset = build_dataset(checkpoint_data(loaded, argparse.Namespace(data=None, overrides=[])), "val",
                            classes=loaded.classes)  # fmt: skip
    result = evaluate_forecast(loaded.model, dataset, progress=False)
    assert row["mse"] == pytest.approx(result.model["mse"], rel=1e-9)
    baselines = run.study.user_attrs[BASELINES_ATTR]
    assert set(baselines) == {"dense", "persistence"}
    assert baselines["dense"]["mac_fraction"] == 1.0 and baselines["persistence"]["macs"] == 0.0
    assert baselines["persistence"]["mse"] == pytest.approx(result.persistence["mse"], rel=1e-9)


def test_the_dense_baseline_is_the_model_with_every_tile_and_channel_kept(copruned_checkpoint):
    from dataclasses import replace

    model = load_model(copruned_checkpoint).model
    inputs = _val_inputs(load_model(copruned_checkpoint))
    with torch.no_grad():
        dense = model.backbone(inputs)
        model.config = replace(model.config, data_mask=False, model_mask=False)
        torch.testing.assert_close(model(inputs), dense, rtol=1e-5, atol=1e-6)


def test_a_resumed_study_refuses_other_objectives_and_tops_up(copruned_study, copruned_checkpoint):
    run, url = copruned_study
    other = StudyConfig(objectives=("mse", "macs"), trials=4, energy=False, **FAST)
    with pytest.raises(ConfigError, match="created with other objectives"):
        run_study(other, checkpoint=copruned_checkpoint, storage=url, progress=False)
    narrower = StudyConfig(knobs=("data_threshold",), trials=4, energy=False, **FAST)
    with pytest.raises(ConfigError, match="created with other space"):
        run_study(narrower, checkpoint=copruned_checkpoint, storage=url, progress=False)
    again = run_study(StudyConfig(trials=5, energy=False, **FAST), checkpoint=copruned_checkpoint, storage=url,
                      progress=False)  # fmt: skip
    assert again.complete_trials == 5


def test_plot_draws_mse_fronts(copruned_study, tmp_path):
    run, url = copruned_study
    paths = {p.name for p in study_figures(url, run.study_name, tmp_path)}
    assert {"front_mac_fraction.png", "front_latency_ms.svg", "hypervolume.png", "keep_rates.png"} <= paths
    from studies.plots import front_metrics, quality_axis

    frame = trials_frame(run.study)
    assert quality_axis(study_spec(run.study)["objectives"]) == "mse"
    assert "mse" not in front_metrics(frame, ["mse", "mac_fraction", "latency_ms"])


def test_deploy_writes_the_trials_thresholds(copruned_study, copruned_checkpoint, tmp_path):
    run, _ = copruned_study
    trial = run.study.best_trials[0]
    deployed = deploy_trial(run.study, trial.number, tmp_path / "deployed.pt")
    checkpoint = load_checkpoint(deployed.path)
    assert checkpoint.kind == "copruned"
    for name in ("data_threshold", "channel_threshold"):
        assert checkpoint.model["copruning"][name] == trial.user_attrs["knobs"][name] == deployed.knobs[name]
    assert checkpoint["study_trial"]["number"] == trial.number
    assert checkpoint["study_trial"]["measured"]["mse"] == trial.user_attrs["mse"]
    loaded = load_model(deployed.path)
    assert isinstance(loaded.model, CoprunedSimVP)
    assert current_thresholds(loaded.model) == deployed.knobs
    source = load_checkpoint(copruned_checkpoint)
    assert all(torch.equal(v, source.state_dict[k]) for k, v in checkpoint.state_dict.items())
    with pytest.raises(ConfigError, match="another file"):
        deploy_trial(run.study, trial.number, copruned_checkpoint)


def test_cli_run_status_plot_deploy(copruned_checkpoint, tmp_path, capsys, no_meter):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", copruned_checkpoint, "--storage", url, "--trials", "2", *CLI_FAST]
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "objectives mse, mac_fraction, latency_ms" in out and "complete 2" in out
    assert "persistence" in out and "knob.data_threshold" in out
    assert main(["study", "plot", "--storage", url, "--out", str(tmp_path / "fig")]) == 0
    assert str(tmp_path / "fig" / "front_mac_fraction.png") in capsys.readouterr().out.splitlines()
    out_path = tmp_path / "deployed" / "model.pt"
    assert main(["study", "deploy", "--storage", url, "--trial", "1", "--out", str(out_path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trial"] == 1 and set(report["knobs"]) == {"data_threshold", "channel_threshold"}
    assert load_checkpoint(out_path).model["copruning"]["data_threshold"] == report["knobs"]["data_threshold"]
    assert Path(report["checkpoint"]) == out_path
    picked = tmp_path / "picked.pt"
    assert main(["study", "deploy", "--storage", url, "--max-mse-increase", "10", "--out", str(picked)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {picked}: trial" in out and "the trial measured mse" in out
    assert f"dance3d eval --checkpoint {picked} --execution simulate" in out
    err = _error(["study", "deploy", "--storage", url, "--max-accuracy-drop", "0.01", "--out", str(tmp_path / "x.pt")],
                 capsys)  # fmt: skip
    assert "scores a forecaster by mse, not accuracy" in err and not (tmp_path / "x.pt").exists()


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_cli_errors_are_one_clear_line(copruned_checkpoint, tmp_path, capsys, no_meter):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", copruned_checkpoint, "--storage", url, "--trials", "1", *CLI_FAST]
    err = _error([*run, "--objectives", "accuracy,mac_fraction"], capsys)
    assert "'accuracy' does not apply to a forecaster (co-pruned checkpoint): its quality objective is 'mse'" in err
    assert "'accuracy' does not apply" in _error([*run, "--constraint", "accuracy>=0.5"], capsys)
    err = _error([*run, "--set", "study.threshold_high=1.5"], capsys)
    assert "0 < threshold_low < threshold_high < 1" in err
    assert "unknown knob(s) tile_size" in _error([*run, "--knobs", "tile_size"], capsys)
    assert "execution mode(s) fast not available" in _error([*run, "--set", "study.execution_modes=[fast]"], capsys)
    assert not (tmp_path / "study.db").exists()  # refused before anything was written


def test_mse_is_refused_for_a_classifier(dynamic_checkpoint, tmp_path, capsys, no_meter):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", dynamic_checkpoint, "--storage", url, "--trials", "1", *CLI_FAST]
    err = _error([*run, "--objectives", "mse,mac_fraction"], capsys)
    assert "'mse' does not apply to a classifier (dynamic checkpoint): its quality objective is 'accuracy'" in err


def test_pick_by_mse_increase_takes_the_cheapest_close_pareto_trial(copruned_study):
    run, _ = copruned_study
    dense_mse = run.study.user_attrs[BASELINES_ATTR]["dense"]["mse"]
    pareto = run.study.best_trials
    loosest = max(t.user_attrs["mse"] for t in pareto) / dense_mse  # every Pareto trial is close at this bound
    picked = pick_forecast_trial(run.study, max_mse_increase=max(loosest - 1.0, 0.0))
    assert picked.user_attrs["mac_fraction"] == min(t.user_attrs["mac_fraction"] for t in pareto)
    tight = min(t.user_attrs["mse"] for t in pareto) / dense_mse - 1.0
    if tight > 1e-9:  # no Pareto trial matches the dense model's MSE exactly: a zero bound finds none
        with pytest.raises(ConfigError, match="no Pareto trial .* has an MSE within 0 x above the dense model's"):
            pick_forecast_trial(run.study, max_mse_increase=0.0)
    with pytest.raises(ConfigError, match="scores a forecaster by mse, not accuracy: pick with --max-mse-increase"):
        pick_trial(run.study, max_accuracy_drop=0.01)


def test_forecast_checkpoints_are_measured_as_baselines(copruned_checkpoint, dynamic_checkpoint, tmp_path):
    dense_forecaster = Path(copruned_checkpoint).parents[1] / "dense" / "model.pt"
    config = StudyConfig(trials=1, energy=False, **FAST)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = run_study(config, checkpoint=copruned_checkpoint, storage=url, progress=False,
                    baseline_checkpoints={"before_copruning": dense_forecaster})  # fmt: skip
    baseline = run.study.user_attrs[BASELINES_ATTR]["before_copruning"]
    assert baseline["mac_fraction"] == 1.0 and baseline["mse"] > 0  # the same SimVP, counted op by op
    assert baseline["checkpoint"] == str(dense_forecaster.resolve())
    with pytest.raises(ConfigError, match="is a 'dynamic' checkpoint, not a forecaster"):
        run_study(config, checkpoint=copruned_checkpoint, storage=f"sqlite:///{tmp_path / 'other.db'}",
                  progress=False, baseline_checkpoints={"clf": dynamic_checkpoint})  # fmt: skip
    with pytest.raises(ConfigError, match="'forecast' checkpoint; a study needs a dynamic model .* or a co-pruned"):
        run_study(config, checkpoint=dense_forecaster, storage=url, progress=False)


def test_compact_trials_measure_what_simulate_does(copruned_checkpoint):
    from studies.copruned import copruned_point_measurer
    from studies.forecast import ForecastMeasurer, forecast_data, load_forecast_set
    from studies.measure import EnergySetup
    from studies.space import Point

    loaded = load_model(copruned_checkpoint)
    data = load_forecast_set(build_dataset(forecast_data(loaded), "val", classes=loaded.classes))
    measurer = ForecastMeasurer(data, torch.device("cpu"), 8, 0, 1, EnergySetup())
    measure = copruned_point_measurer(loaded.model, measurer)
    knobs = {"data_threshold": 0.55, "channel_threshold": 0.3}
    simulate, compact = (measure(Point(knobs, mode, 2)) for mode in ("simulate", "compact"))
    assert compact["mse"] == pytest.approx(simulate["mse"], rel=1e-5)
    assert compact["mac_fraction"] == pytest.approx(simulate["mac_fraction"])
    assert compact["batch_size"] == 2 and loaded.model.mode == "compact"
    assert loaded.model.config.data_threshold == 0.55


def test_energy_is_estimated_where_no_meter_works_and_a_meter_adds_it_to_the_defaults(
    copruned_checkpoint, tmp_path, no_meter
):
    from studies.objectives import FORECAST, default_objectives

    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig(objectives=("mse", "energy_per_clip_j"), energy_estimate=(1e-9, 1e-11, 2.0), trials=2, **FAST)
    run = run_study(config, checkpoint=copruned_checkpoint, storage=url, progress=False, limit=4)
    trials = trials_frame(run.study)
    trials = trials[trials["source"] == "trial"]
    assert set(trials["energy_source"]) == {"estimated"} and (trials["energy_per_clip_j"] > 0).all()
    assert default_objectives(FORECAST, meter_works=True) == ("mse", "mac_fraction", "latency_ms", "energy_per_clip_j")
    assert default_objectives(FORECAST, meter_works=False) == ("mse", "mac_fraction", "latency_ms")


def _postgres_skip_reason() -> str | None:
    from postgres_server import postgres_bin

    if postgres_bin() is None:
        return "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_postgres_skip_reason() is not None, reason=str(_postgres_skip_reason()))
def test_two_workers_share_one_forecaster_study(copruned_checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    from optuna.trial import TrialState
    from postgres_server import postgres_bin, postgres_server

    from studies import load_study, open_storage

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    with postgres_server(postgres_bin()) as url:
        procs = []
        for seed in (1, 2):
            args = [sys.executable, "-m", "dance3d", "study", "run", "--checkpoint", copruned_checkpoint,
                    "--storage", url, "--study-name", "shared", "--trials", "8", "--seed", str(seed),
                    "--repeats", "100", "--set", "study.latency_warmup=0", "--no-progress"]  # fmt: skip
            log = (tmp_path / f"{seed}.log").open("w")
            procs.append(
                (subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env), tmp_path / f"{seed}.log")
            )
        for proc, log in procs:
            assert proc.wait(timeout=300) == 0, log.read_text()
        study = load_study(open_storage(url), "shared")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        spec = study_spec(study)
    assert 8 <= len(complete) <= 9  # each worker stops once the study holds 8; the other may finish one more
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert all(t.values[0] == t.user_attrs["mse"] for t in complete)
    assert spec["objectives"][:3] == ["mse", "mac_fraction", "latency_ms"]


def test_a_transformer_forecasters_study_runs_and_deploys(tmp_path, capsys, no_meter):
    """The Transformer wrapper (token dropping) takes the same knobs, study, and deploy."""
    settings = ["--set", "train.num_workers=0", "--set", "train.progress=false", *DATA, *FAST_TRAIN]
    dense = tmp_path / "dense"
    assert main(["train", "--task", "forecast", "--model", "stformer-test", "--out", str(dense), *settings]) == 0
    args = ["copruning", "--checkpoint", str(dense / "model.pt"), "--out", str(tmp_path / "cp"), *FAST_TRAIN]
    assert main(args) == 0
    checkpoint = str(tmp_path / "cp" / "model.pt")
    model = load_model(checkpoint).model
    assert type(model).__name__ == "CoprunedSTFormer" and current_thresholds(model)["data_threshold"] == 0.5
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", checkpoint, "--storage", url, "--trials", "2",
           "--set", "study.execution_modes=[compact]", *CLI_FAST]  # fmt: skip
    assert main(run) == 0
    assert "complete 2" in capsys.readouterr().out
    out_path = tmp_path / "deployed.pt"
    assert main(["study", "deploy", "--storage", url, "--trial", "0", "--out", str(out_path), "--format", "json"]) == 0
    knobs = json.loads(capsys.readouterr().out)["knobs"]
    deployed = load_model(out_path).model
    assert type(deployed).__name__ == "CoprunedSTFormer"
    assert current_thresholds(deployed) == pytest.approx(knobs)
