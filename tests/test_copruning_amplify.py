"""The amplifying first stage of co-pruning: what it records, the terms it raises, and the run that uses it."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch
from copruning_helpers import coprune_tiny, make_copruned, train_tiny_forecaster

from dance3d.benchmark_results import ResultDir, validate_result
from dance3d.checkpoint import load_checkpoint
from dance3d.config import to_dict
from dance3d.copruning.amplify import HiddenActivations, amplify, variability
from dance3d.copruning.amplify_benchmark import ARMS, run_amplify_benchmark, run_retarget
from dance3d.copruning.benchmark import DynaSettings
from dance3d.copruning.config import CopruneRunConfig, CopruneTrainConfig
from dance3d.copruning.training import StoredRun, check_resume_config
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError

BACKBONES = ["simvp-test", "stformer-test", "convlstm-test"]


def _hidden_width(model, index: int) -> int:
    backbone = model.backbone
    if hasattr(backbone, "cells"):
        return backbone.cells[index].hidden
    blocks = backbone.blocks if hasattr(backbone, "blocks") else model.blocks
    mlp = blocks[index].mlp[0]
    return mlp.out_features if hasattr(mlp, "out_features") else mlp.out_channels


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_recorded_activations_are_the_gated_units_on_the_latent_map(backbone):
    model = make_copruned(backbone)
    x = torch.randn(2, 3, 2, 18, 14)  # padded to 20 x 16: a 5 x 4 latent map
    recorder = HiddenActivations(model.backbone)
    with torch.no_grad():
        model.backbone(x)
    activations = recorder.take(5, 4)
    recorder.remove()
    steps = {"simvp-test": 1, "stformer-test": 3, "convlstm-test": 3 + 2 - 1}[backbone]  # ConvLSTM: t_in + t_out - 1
    gated = model.backbone.cells if backbone == "convlstm-test" else model.blocks
    assert sorted(activations) == list(range(len(gated)))
    for index, activation in activations.items():
        assert activation.shape == (2, _hidden_width(model, index), steps, 5, 4)
    assert recorder.take(5, 4) == {}  # taken and cleared; after remove() nothing records
    with torch.no_grad():
        model.backbone(x)
    assert recorder.take(5, 4) == {}


def test_variability_keeps_the_gated_kinds_and_measures_them():
    grid = TileGrid(4, 4, 2, 2)
    activation = torch.ones(2, 3, 1, 4, 4)
    activation[1, :, :, :2, :2] = 3.0  # sample 1: one tile of four three times as strong
    terms = variability({0: activation}, grid)
    assert set(terms) == {"within.tile", "across.tile", "within.channel", "across.channel"}
    assert float(terms["within.channel"]) == pytest.approx(0.0, abs=1e-6)  # every channel alike
    tiles = torch.tensor([[1.0, 1, 1, 1], [3, 1, 1, 1]])
    within = (tiles.std(dim=1, unbiased=False) / tiles.mean(dim=1)).mean()
    across = (tiles.std(dim=0, unbiased=False) / tiles.mean(dim=0)).mean()
    assert float(terms["within.tile"]) == pytest.approx(float(within), rel=1e-4)
    assert float(terms["across.tile"]) == pytest.approx(float(across), rel=1e-4)


def test_the_amplifying_term_reaches_the_backbone_weights():
    model = make_copruned("stformer-test")
    recorder = HiddenActivations(model.backbone)
    model.backbone(torch.randn(3, 3, 2, 16, 16))
    cv = torch.stack(list(variability(recorder.take(4, 4), model.grid_for(4, 4)).values())).mean()
    cv.backward()
    recorder.remove()
    grads = [block.mlp[0].weight.grad for block in model.backbone.blocks]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)


class _Forecasts(torch.utils.data.Dataset):
    def __init__(self, count: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(count, 3, 2, 16, 16, generator=g)
        self.targets = self.inputs[:, -2:] + 0.1 * torch.randn(count, 2, 2, 16, 16, generator=g)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.inputs[index], "targets": self.targets[index]}


def test_the_stage_raises_the_variability_and_keeps_frozen_weights_frozen():
    model = make_copruned("simvp-test")
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(False)  # as a run with train.train_backbone=false leaves them
    settings = CopruneTrainConfig(batch_size=8, lr=3e-3, amplify_epochs=3, amplify_weight=1.0, progress=False)
    result = amplify(model.backbone, _Forecasts(32, 0), _Forecasts(16, 1), train=settings,
                     grid_for=model.grid_for, dense_val_mse=1.0, device=torch.device("cpu"))  # fmt: skip
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert set(result.cv_before) == set(result.cv_after) == {"within.tile", "across.tile", "within.channel",
                                                             "across.channel"}  # fmt: skip
    mean = lambda terms: sum(terms.values()) / len(terms)  # noqa: E731
    assert mean(result.cv_after) > mean(result.cv_before)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.backbone.training


def test_a_run_with_the_stage_records_it(tmp_path):
    dense = train_tiny_forecaster("simvp-test", tmp_path / "dense")
    out = coprune_tiny(dense, tmp_path / "run", tile_size=4, extra=("--amplify-epochs", "1"))
    written = json.loads((out / "amplify.json").read_text())
    assert [row["epoch"] for row in written["history"]] == [1]
    assert written["cv_before"].keys() == written["cv_after"].keys()
    assert written["val_mse_after"] > 0
    checkpoint = load_checkpoint(out / "model.pt")
    assert checkpoint["copruning"]["amplification"] == written
    assert checkpoint.config["train"]["amplify_epochs"] == 1
    plain = coprune_tiny(dense, tmp_path / "plain", tile_size=4)
    assert not (plain / "amplify.json").exists()
    assert load_checkpoint(plain / "model.pt")["copruning"]["amplification"] is None


@pytest.mark.parametrize(
    ("field", "value"), [("amplify_epochs", -1), ("amplify_weight", -0.1), ("amplify_cv_cap", 0.0)]
)
def test_bad_stage_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=f"train.{field}"):
        CopruneTrainConfig(**{field: value})


def test_a_run_saved_before_the_stage_existed_resumes():
    run = CopruneRunConfig()
    saved = to_dict(run)
    for key in ("amplify_epochs", "amplify_weight", "amplify_cv_cap"):
        del saved["train"][key]
    stored = StoredRun(path=None, record=_Record(saved), finished=False)  # type: ignore[arg-type]
    check_resume_config(stored, run, "dense.pt")  # no conflict: the missing settings are their defaults
    with pytest.raises(ConfigError, match="train.amplify_epochs: 0 -> 2"):
        check_resume_config(stored, replace(run, train=replace(run.train, amplify_epochs=2)), "dense.pt")


class _Record:
    """The parts of a stored checkpoint :func:`check_resume_config` reads."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def __getitem__(self, key: str) -> dict:
        return {"started_from": "dense.pt"}


def test_a_tiny_benchmark_run_compares_the_three_arms(tmp_path):
    settings = replace(
        DynaSettings(backbone="stformer-test", height=16, width=16, num_train=16, num_val=8, num_test=8),
        dense_epochs=1, finetune_epochs=1, batch_size=8,
    )  # fmt: skip
    out = ResultDir(tmp_path / "results", "dyna_amplify", "tiny-quick")
    payload = run_amplify_benchmark(settings, amplify_epochs=1, work=tmp_path / "work", out=out, quick=True,
                                    threads=1, log=lambda _: None)  # fmt: skip
    assert validate_result(payload) == [] and out.save(payload).is_file()
    runs = payload["coprune_runs"]
    assert runs["plain"]["amplification"] is None
    assert runs["extra"]["amplification"]["history"] and runs["amplified"]["amplification"]["history"]
    extra_loss = runs["extra"]["amplification"]["history"][0]["train_loss"]
    amplified_loss = runs["amplified"]["amplification"]["history"][0]["train_loss"]
    assert extra_loss > 0 > amplified_loss - extra_loss  # the amplifying term lowers the loss; plain MSE is positive
    wins = payload["wins"]
    assert payload["targets"]["amplifying_stage_helps"] == (wins["plain"] and wins["extra"])
    for rival in ("plain", "extra"):
        test = payload["paired_tests"][rival]
        fraction_ok = (
            payload["summary"]["amplified"]["mac_fraction"] <= payload["summary"][rival]["mac_fraction"] + 0.02
        )
        assert wins[rival] == (test["reference_ahead"] and fraction_ok)
    records = pd.read_parquet(out.file("records.parquet"))
    assert sorted(records.method.unique()) == sorted(["dense", *ARMS]) and len(records) == 8 * 4

    again = ResultDir(tmp_path / "results", "dyna_amplify", "retarget-0.4")
    dense = tmp_path / "work" / "dense" / "model.pt"
    retargeted = run_retarget(settings, target_mac_fraction=0.4, work=tmp_path / "work", out=again,
                              dense_checkpoint=dense, log=lambda _: None)  # fmt: skip
    assert validate_result(retargeted) == [] and set(retargeted["fits"]) == set(ARMS)
    for arm, fit in retargeted["fits"].items():
        assert fit["val_mac_fraction"] <= 0.4 + 1e-3 and fit["val_mac_fraction_before"] == pytest.approx(
            payload["coprune_runs"][arm]["val_mac_fraction"], abs=1e-4
        )
    with pytest.raises(ConfigError, match="missing"):
        run_retarget(settings, target_mac_fraction=0.4, work=tmp_path / "nothing", out=again, dense_checkpoint=dense)
