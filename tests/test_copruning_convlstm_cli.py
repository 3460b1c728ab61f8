"""``dance3d copruning`` on a tiny ConvLSTM: train, co-prune, eval and profile it, and study its thresholds."""

from __future__ import annotations

import argparse

import pytest
import torch
from copruning_helpers import (
    assert_profile_counts_compact_macs,
    coprune_tiny,
    eval_in_both_modes,
    fallback_table_and_eval,
    train_tiny_forecaster,
)

from dance3d.checkpoint import load_checkpoint
from dance3d.cli.forecast_eval import checkpoint_data
from dance3d.copruning.convlstm import CoprunedConvLSTM
from dance3d.copruning.knobs import apply_thresholds, current_thresholds, threshold_knobs
from dance3d.data.registry import build_dataset
from dance3d.loading import load_model
from studies import StudyConfig, run_study, trials_frame


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory):
    return train_tiny_forecaster("convlstm-test", tmp_path_factory.mktemp("fc") / "run")


@pytest.fixture(scope="module")
def copruned(dense_checkpoint, tmp_path_factory):
    return coprune_tiny(dense_checkpoint, tmp_path_factory.mktemp("cp") / "run", tile_size=4)


def _dataset(loaded, split: str):  # noqa: ANN202
    return build_dataset(checkpoint_data(loaded, argparse.Namespace(data=None, overrides=[])), split,
                         classes=loaded.classes)  # fmt: skip


def test_copruning_a_convlstm_writes_a_checkpoint_that_loads(copruned):
    checkpoint = load_checkpoint(copruned / "model.pt")
    assert checkpoint.kind == "copruned" and checkpoint.model["name"] == "convlstm-test"
    assert checkpoint.model["copruning"]["backbone"] == "convlstm-test"  # taken from the dense checkpoint
    assert 0 < checkpoint.history[0]["val_mac_fraction"] <= 1.05
    assert isinstance(load_model(copruned / "model.pt").model, CoprunedConvLSTM)


def test_eval_loads_it_and_scores_simulate_and_compact_alike(run_cli, copruned):
    eval_in_both_modes(run_cli, copruned / "model.pt")


def test_profile_counts_what_the_compact_convlstm_runs(run_cli, copruned):
    assert_profile_counts_compact_macs(run_cli, copruned / "model.pt")


def test_the_thresholds_are_knobs_that_apply_exactly(copruned):
    loaded = load_model(copruned / "model.pt")
    model: CoprunedConvLSTM = loaded.model
    trained = dict(current_thresholds(model))
    assert [k.name for k in threshold_knobs(model.config)] == ["data_threshold", "channel_threshold"]
    dataset = _dataset(loaded, "val")
    inputs = torch.stack([dataset[i]["inputs"] for i in range(len(dataset))])
    with torch.no_grad():
        reference, reference_macs = model(inputs).clone(), model.last_macs.clone()
        apply_thresholds(model, {"data_threshold": 0.97, "channel_threshold": 0.9})
        model(inputs)
        assert model.last_macs.sum() < reference_macs.sum()  # higher thresholds keep less
        apply_thresholds(model, trained)
        assert torch.equal(model(inputs), reference) and torch.equal(model.last_macs, reference_macs)


def test_a_study_searches_its_thresholds(copruned, tmp_path):
    config = StudyConfig(trials=2, energy=False, latency_warmup=0, latency_repeats=1, eval_batch_size=8,
                         heartbeat_interval_s=1, grace_period_s=2)  # fmt: skip
    run = run_study(config, checkpoint=str(copruned / "model.pt"), storage=f"sqlite:///{tmp_path / 's.db'}",
                    progress=False)  # fmt: skip
    frame = trials_frame(run.study)
    trials = frame[(frame["source"] == "trial") & (frame["state"] == "COMPLETE")]
    assert len(trials) == 2 and (trials["mse"] > 0).all()
    assert ((trials["mac_fraction"] > 0) & (trials["mac_fraction"] < 1.2)).all()
    assert trials["knob.channel_threshold"].between(0.01, 0.99).all()


def test_resume_refuses_a_contradicting_flag(run_cli, copruned):
    code, _, err = run_cli("copruning", "--out", str(copruned), "--resume", "--tile-size", "8")
    assert code == 2 and "Traceback" not in err and "tile_size" in err


def test_its_fallback_table_is_measured_and_eval_with_it_scores_alike(run_cli, copruned, tmp_path):
    report, measured, scores = fallback_table_and_eval(run_cli, copruned / "model.pt", tmp_path)
    assert report["break_even_tiles"] == measured.break_even_tiles and len(measured.whole_ms) == 3
    assert scores["whole"]["mse_normalised"] == pytest.approx(scores["tiles"]["mse_normalised"], rel=1e-5)
    assert scores["whole"]["mac_fraction"] >= scores["tiles"]["mac_fraction"]  # every position is charged
