"""``dance3d sweep`` and ``dance3d budget`` take forecasters and co-pruned checkpoints like DANCE checkpoints."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
import torch
from test_copruning_cli import copruned, dense_checkpoint  # noqa: F401 - module fixtures: a tiny co-pruned SimVP

from dance3d.checkpoint import load_checkpoint
from dance3d.cli.profiling_inputs import checkpoint_inputs
from dance3d.copruning.budget import fit_copruned_budget, shifted
from dance3d.dynamic.budget import mean_mac_fraction
from dance3d.errors import ConfigError
from dance3d.loading import load_model


def test_sweep_measures_a_dense_and_a_copruned_forecaster_in_every_mode(run_cli, copruned, dense_checkpoint, tmp_path):  # noqa: F811
    out = tmp_path / "sweep.csv"
    code, _, err = run_cli("sweep", "--checkpoint", str(copruned / "model.pt"), "--modes", "simulate,compact",
                           "--batch-sizes", "1,2", "--repeats", "1", "--no-energy", "--threads", "1",
                           "--out", str(out))  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(out)
    assert len(table) == 4 and set(table["mode"]) == {"simulate", "compact"} and set(table["batch_size"]) == {1, 2}
    assert (table["latency_ms"] > 0).all()
    code, _, err = run_cli("sweep", "--checkpoint", str(dense_checkpoint), "--batch-sizes", "1", "--repeats", "1",
                           "--no-energy", "--threads", "1", "--out", str(tmp_path / "dense.csv"))  # fmt: skip
    assert code == 0, err
    assert (pd.read_csv(tmp_path / "dense.csv")["latency_ms"] > 0).all()


def test_sweep_refuses_modes_for_a_dense_forecaster_with_one_line(run_cli, dense_checkpoint, tmp_path):  # noqa: F811
    code, _, err = run_cli("sweep", "--checkpoint", str(dense_checkpoint), "--modes", "compact",
                           "--out", str(tmp_path / "s.csv"))  # fmt: skip
    assert code == 2 and "runs in --modes default only" in err and "Traceback" not in err


def test_the_threshold_shift_keeps_more_for_a_positive_offset():
    assert shifted(0.5, 0.0) == pytest.approx(0.5)
    assert shifted(0.5, 1.0) < 0.5 < shifted(0.5, -1.0)
    assert 0 < shifted(0.999, -50.0) < 1 and 0 < shifted(0.001, 50.0) < 1


def test_budget_retargets_a_copruned_checkpoint_and_the_written_one_runs_there(run_cli, copruned, tmp_path):  # noqa: F811
    source = copruned / "model.pt"
    out = tmp_path / "low" / "model.pt"
    code, stdout, err = run_cli("budget", "--checkpoint", str(source), "--target-mac-fraction", "0.3",
                                "--out", str(out), "--limit", "8", "--format", "json")  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["mac_fraction"] <= 0.3 and report["mac_fraction"] < report["mac_fraction_before"]
    written = load_checkpoint(out)
    assert written.kind == "copruned" and written["budget"]["target_mac_fraction"] == 0.3
    assert written.model["copruning"]["data_threshold"] == pytest.approx(report["thresholds"]["data_threshold"])
    code, stdout, err = run_cli("eval", "--checkpoint", str(out), "--split", "val", "--limit", "8", "--format", "json")
    assert code == 0, err
    assert json.loads(stdout)["mac_fraction"] == pytest.approx(report["mac_fraction"], rel=1e-5)


def test_budget_can_raise_a_copruned_models_mac_fraction_on_one_threshold(copruned):  # noqa: F811
    loaded = load_model(copruned / "model.pt")
    inputs = checkpoint_inputs(loaded, argparse.Namespace(data=None, overrides=[]), split="val", count=8)
    model = loaded.model.eval()
    before = mean_mac_fraction(model, inputs, batch_size=4)
    trained = dict(model.config.__dict__)
    fit = fit_copruned_budget(model, inputs, 1.0, thresholds=("data_threshold",), batch_size=4)
    assert fit.mac_fraction >= before and fit.thresholds["data_threshold"] < trained["data_threshold"]
    assert fit.thresholds["channel_threshold"] == trained["channel_threshold"]  # not shifted
    assert mean_mac_fraction(model, inputs, batch_size=4) == pytest.approx(fit.mac_fraction)


def test_bad_budgets_for_a_copruned_checkpoint_fail_with_one_line(run_cli, copruned, tmp_path):  # noqa: F811
    source = str(copruned / "model.pt")
    out = str(tmp_path / "x" / "model.pt")
    code, _, err = run_cli("budget", "--checkpoint", source, "--target-latency-ms", "3", "--cost-table", "t.json",
                           "--out", out)  # fmt: skip
    assert code == 2 and "re-targeted with --target-mac-fraction" in err
    code, _, err = run_cli("budget", "--checkpoint", source, "--target-mac-fraction", "0.3", "--knobs", "frames",
                           "--out", out, "--limit", "4")  # fmt: skip
    assert code == 2 and "unknown knob(s) frames" in err
    code, _, err = run_cli("budget", "--checkpoint", source, "--target-mac-fraction", "0.0001", "--out", out,
                           "--limit", "4")  # fmt: skip
    assert code == 2 and "is below what this model reaches" in err
    code, _, err = run_cli("budget", "--checkpoint", source, "--target-mac-fraction", "0.3", "--out", source)
    assert code == 2 and "Traceback" not in err
    with pytest.raises(ConfigError, match="at least one sample"):
        fit_copruned_budget(load_model(source).model, torch.zeros(0, 3, 2, 16, 16), 0.5)
