"""``dance3d copruning`` on a tiny Transformer: train, co-prune, eval and profile the token-dropping model."""

from __future__ import annotations

import pytest
from copruning_helpers import (
    FAST,
    TINY_DATA,
    assert_profile_counts_compact_macs,
    coprune_tiny,
    eval_in_both_modes,
    train_tiny_forecaster,
)

from dance3d.checkpoint import load_checkpoint
from dance3d.copruning import CoprunedSTFormer
from dance3d.loading import load_model


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory):
    return train_tiny_forecaster("stformer-test", tmp_path_factory.mktemp("fc") / "run")


@pytest.fixture(scope="module")
def copruned(dense_checkpoint, tmp_path_factory):
    return coprune_tiny(dense_checkpoint, tmp_path_factory.mktemp("cp") / "run", tile_size=8)


def test_copruning_a_transformer_writes_a_checkpoint_that_loads(copruned):
    checkpoint = load_checkpoint(copruned / "model.pt")
    assert checkpoint.kind == "copruned" and checkpoint.model["name"] == "stformer-test"
    assert checkpoint.model["copruning"]["backbone"] == "stformer-test"  # taken from the dense checkpoint
    assert 0 < checkpoint.history[0]["val_mac_fraction"] <= 1.05
    loaded = load_model(copruned / "model.pt")
    assert isinstance(loaded.model, CoprunedSTFormer)


def test_eval_loads_it_and_scores_simulate_and_compact_alike(run_cli, copruned):
    eval_in_both_modes(run_cli, copruned / "model.pt")


def test_profile_counts_what_token_dropping_runs(run_cli, copruned):
    assert_profile_counts_compact_macs(run_cli, copruned / "model.pt")


def test_a_transformer_with_another_patch_size_is_refused(run_cli, tmp_path):
    dense = tmp_path / "fc"
    settings = ["--set", "train.num_workers=0", "--set", "train.progress=false",
                "--set", "train.model_options={patch: 8}", *TINY_DATA, *FAST]  # fmt: skip
    code, _, err = run_cli("train", "--task", "forecast", "--model", "stformer-tiny", "--out", str(dense), *settings)
    assert code == 0, err
    assert load_checkpoint(dense / "model.pt").model["options"]["patch"] == 8
    code, _, err = run_cli("copruning", "--checkpoint", str(dense / "model.pt"), "--out", str(tmp_path / "cp"))
    assert code == 2 and "needs patch size 4" in err and "Traceback" not in err
    assert not (tmp_path / "cp" / "model.pt").exists()


def test_a_fallback_table_is_refused_for_it(run_cli, copruned, tmp_path):
    model = str(copruned / "model.pt")
    code, _, err = run_cli("fallback-table", "--checkpoint", model, "--out", str(tmp_path / "t.json"))
    assert code == 2 and "must be a co-pruned SimVP or ConvLSTM" in err
    code, _, err = run_cli("eval", "--checkpoint", str(copruned / "model.pt"), "--execution", "compact",
                           "--calibration", str(tmp_path / "t.json"))  # fmt: skip
    assert code == 2 and "the Transformer's compact execution has none" in err
