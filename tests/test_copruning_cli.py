"""``dance3d copruning`` end to end on a tiny SimVP: train, co-prune, eval in both modes, clear errors."""

from __future__ import annotations

import json

import pytest
from copruning_helpers import (
    assert_profile_counts_compact_macs,
    coprune_tiny,
    eval_in_both_modes,
    train_tiny_forecaster,
)

from dance3d.checkpoint import load_checkpoint
from dance3d.copruning import CoprunedSimVP
from dance3d.loading import load_model


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory):
    return train_tiny_forecaster("simvp-test", tmp_path_factory.mktemp("fc") / "run")


@pytest.fixture(scope="module")
def copruned(dense_checkpoint, tmp_path_factory):
    return coprune_tiny(
        dense_checkpoint, tmp_path_factory.mktemp("cp") / "run", tile_size=4, extra=("--distill-weight", "0.5")
    )


def test_copruning_writes_a_copruned_checkpoint_that_loads(copruned, dense_checkpoint):
    checkpoint = load_checkpoint(copruned / "model.pt")
    assert checkpoint.kind == "copruned"
    assert checkpoint.model["name"] == "simvp-test" and checkpoint.model["copruning"]["target_mac_fraction"] == 0.5
    assert checkpoint.model["copruning"]["backbone"] == "simvp-test"  # taken from the dense checkpoint
    assert checkpoint.config["train"]["distill_weight"] == 0.5
    row = checkpoint.history[0]
    assert set(row) >= {"train_loss", "train_mac_fraction", "val_mse", "val_persistence_mse", "val_mac_fraction"}
    assert 0 < row["val_mac_fraction"] <= 1.05
    assert checkpoint["copruning"]["started_from"] == str(dense_checkpoint.resolve())
    assert (copruned / "config.yaml").is_file() and len((copruned / "metrics.jsonl").read_text().splitlines()) == 1
    loaded = load_model(copruned / "model.pt")
    assert isinstance(loaded.model, CoprunedSimVP) and loaded.classes == ("vil",)


def test_copruning_writes_one_trace_row_per_training_step(copruned):
    rows = [json.loads(line) for line in (copruned / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1]  # 16 samples, batches of 8
    for row in rows:
        assert 0 < row["mac_fraction"] <= 1.05 and 0 <= row["position_fraction"] <= 1
        assert 0 < row["channel_fraction"] <= 1 and 0 < row["mean_s"] < 1
        assert row["mac_penalty"] == pytest.approx(abs(row["mac_fraction"] - 0.5))  # the two-sided default
        assert row["generator_grad_norm"] > 0


def test_eval_scores_simulate_and_compact_alike(run_cli, copruned):
    compact = eval_in_both_modes(run_cli, copruned / "model.pt", "--records")["compact"]
    fractions = [row["mac_fraction"] for row in compact["records"]]
    assert len(fractions) == 8 and sum(fractions) / 8 == pytest.approx(compact["mac_fraction"])


def test_copruning_refuses_a_checkpoint_it_cannot_start_from(run_cli, copruned, tmp_path):
    code, _, err = run_cli("copruning", "--checkpoint", str(copruned / "model.pt"), "--out", str(tmp_path / "x"))
    assert code == 2 and "starts from a trained forecaster (kind 'forecast')" in err and "'copruned'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tile-size", "6"], "copruning.tile_size must be a multiple of 4"),
        (["--set", "copruning.data_threshold=1.5"], "copruning.data_threshold must be > 0 and < 1, got 1.5"),
        (["--set", "copruning.nope=1"], "unknown config key(s) copruning.nope"),
        (["--target-mac-fraction", "1.5"], "argument --target-mac-fraction: must be in (0, 1], got 1.5"),
        (["--set", "train.mac_penalty=floor"], "train.mac_penalty must be one of target, ceiling, got 'floor'"),
    ],
)
def test_bad_settings_exit_2_with_one_line(run_cli, dense_checkpoint, tmp_path, extra, message):
    code, _, err = run_cli("copruning", "--checkpoint", str(dense_checkpoint), "--out", str(tmp_path / "x"), *extra)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "model.pt").exists()


def test_an_existing_run_is_not_overwritten(run_cli, dense_checkpoint, copruned):
    before = (copruned / "model.pt").read_bytes()
    code, _, err = run_cli("copruning", "--checkpoint", str(dense_checkpoint), "--out", str(copruned))
    assert code == 2 and "exists" in err
    assert (copruned / "model.pt").read_bytes() == before


def test_dynamic_only_flags_are_refused_on_a_copruned_model(run_cli, copruned):
    code, _, err = run_cli("eval", "--checkpoint", str(copruned / "model.pt"), "--knob", "a=1")
    assert code == 2 and "apply to dynamic checkpoints" in err


def test_profile_counts_what_compact_execution_runs(run_cli, copruned):
    assert_profile_counts_compact_macs(run_cli, copruned / "model.pt")
