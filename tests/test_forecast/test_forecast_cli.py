"""Forecasting on the command line: train -> eval -> profile on a -test backbone, and clear errors."""

import json

import pytest

from dance3d.checkpoint import load_checkpoint
from dance3d.cli.main import main
from dance3d.loading import load_model

TINY = ["--set", "data.forecast.num_train=16", "--set", "data.forecast.num_val=8", "--set", "data.forecast.num_test=8",
        "--set", "data.forecast.height=16", "--set", "data.forecast.width=16", "--set", "train.num_workers=0",
        "--set", "train.threads=1", "--set", "train.progress=false", "--epochs", "1", "--batch-size", "8"]  # fmt: skip


@pytest.fixture(scope="module")
def forecast_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("fc") / "run"
    assert main(["train", "--task", "forecast", "--model", "simvp-test", "--out", str(out), *TINY]) == 0
    return out / "model.pt"


def test_train_records_the_task_variables_and_frames(forecast_checkpoint):
    checkpoint = load_checkpoint(forecast_checkpoint)
    assert checkpoint["kind"] == "forecast"
    assert checkpoint["classes"] == ["vil"]
    assert checkpoint["model"]["options"] == {"t_in": 6, "t_out": 6}
    assert set(checkpoint["history"][0]) >= {"train_loss", "val_mse", "val_persistence_mse"}
    loaded = load_model(forecast_checkpoint)
    assert loaded.data.source == "storms" and loaded.kind == "forecast"


def test_a_forecast_run_resumes_with_its_own_settings(run_cli, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--model", "convlstm-test", "--data", "weather", "--out", str(out), *TINY, "--epochs", "2"]
    code, out_text, _ = run_cli(*common)
    assert code == 0 and "val MSE" in out_text
    code, out_text, _ = run_cli("train", "--out", str(out), "--resume")  # the forecast kind resumes
    assert code == 0 and "nothing to do" in out_text
    code, _, err = run_cli("train", "--out", str(out), "--resume", "--epochs", "3")
    assert code == 2 and "train.epochs" in err  # a flag contradicting the run is refused
    checkpoint = load_checkpoint(out / "model.pt")
    assert [row["epoch"] for row in checkpoint["history"]] == [1, 2]
    assert checkpoint["classes"] == ["t2m", "z500"] and checkpoint["model"]["options"] == {"t_in": 4, "t_out": 4}
    code, out_text, _ = run_cli("eval", "--checkpoint", str(out / "model.pt"), "--format", "json")
    report = json.loads(out_text)
    for side in ("model", "persistence"):
        assert set(report[side]["lat_weighted_rmse"]) == {"t2m", "z500"} and "categorical" not in report[side]


def test_eval_json_scores_model_and_persistence(run_cli, forecast_checkpoint):
    code, out, _ = run_cli("eval", "--checkpoint", str(forecast_checkpoint), "--format", "json", "--records")
    assert code == 0
    report = json.loads(out)
    assert report["task"] == "forecast" and report["num_samples"] == 8
    for side in ("model", "persistence"):
        assert len(report[side]["mse_per_lead"]) == 6 and len(report[side]["mae_per_lead"]) == 6
        assert set(report[side]["categorical"]) == {"16", "74", "133", "160", "181", "219"}
    assert report["mse_ratio_to_persistence"] == pytest.approx(report["model"]["mse"] / report["persistence"]["mse"])
    assert [r["index"] for r in report["records"]] == list(range(8))
    assert all(0.0 <= r["calm_fraction"] <= 1.0 for r in report["records"])


def test_eval_table_and_data_override(run_cli, forecast_checkpoint):
    code, out, _ = run_cli("eval", "--checkpoint", str(forecast_checkpoint), "--split", "val",
                           "--set", "data.forecast.num_val=4")  # fmt: skip
    assert code == 0
    assert "MSE / persistence" in out and "CSI/POD/FAR >= 74" in out
    assert "samples             4" in out


def test_profile_counts_the_forecaster(run_cli, forecast_checkpoint):
    code, out, _ = run_cli("profile", "--checkpoint", str(forecast_checkpoint), "--repeats", "2",
                           "--no-energy", "--limit", "2", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["macs"] > 0 and report["params"] > 0 and report["latency_ms"] > 0


def test_profile_a_zoo_forecaster_by_name(run_cli):
    code, out, _ = run_cli("profile", "--model", "stformer-test", "--clip-shape", "2x4x16x16",
                           "--repeats", "2", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["macs"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "forecast", "--data", "rainfall"], "--task forecast: data 'rainfall' is classify data"),
        (["--task", "classify", "--data", "storms"], "--task classify: data 'storms' is forecast data"),
        (["--task", "forecast", "--model", "tiny"], "model 'tiny' is not a forecaster; forecasting models:"),
        (["--task", "forecast", "--model", "simvp-huge"], "unknown model 'simvp-huge'"),
        (["--data", "missing/era5.nc"], "data file not found: missing/era5.nc"),
        (["--task", "forecast", "--set", "data.forecast.t_out=0"], "forecast.t_out must be >= 1"),
    ],
)
def test_bad_input_gives_one_clear_line(run_cli, tmp_path, args, message):
    code, _, err = run_cli("train", "--out", str(tmp_path / "run"), *args, *TINY)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_eval_on_other_variables_is_refused(run_cli, forecast_checkpoint):
    code, _, err = run_cli("eval", "--checkpoint", str(forecast_checkpoint), "--data", "traffic")
    assert code == 2
    assert "the model forecasts variables ['vil'], traffic gives ['inflow', 'outflow']" in err
