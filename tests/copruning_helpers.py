"""Shared helpers of the co-pruning tests: a random tiny forecaster of any backbone wrapped for co-pruning,
thresholds that keep everything or half the tiles, a forward in one execution mode, tiny trained runs, and the
CLI checks every co-pruned backbone must pass (eval in both modes, profile, the fallback table)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from dance3d.cli.forecast_eval import checkpoint_data
from dance3d.cli.main import main
from dance3d.copruning import CopruneConfig
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.tiles import tile_scores
from dance3d.copruning.wrappers import coprune_model
from dance3d.data.registry import build_dataset
from dance3d.loading import load_model
from dance3d.models import create_model

KEEP_ALL = {"data_threshold": 1e-6, "channel_threshold": 1e-6}


def make_copruned(backbone: str, *, channels: int = 2, seed: int = 0, **settings) -> CoprunedForecaster:
    """A random ``backbone`` (3 -> 2 frames; a non-zero head, so the forecast is not persistence) wrapped for
    co-pruning with 4-pixel tiles unless ``settings`` say otherwise."""
    torch.manual_seed(seed)
    dense = create_model(backbone, num_classes=channels, t_in=3, t_out=2).eval()
    nn.init.normal_(dense.head.weight, std=0.1)
    config = CopruneConfig(backbone=backbone, **{"tile_size": 4, **settings})
    return coprune_model(dense, config).eval()


def mixed(model: CoprunedForecaster, x: torch.Tensor) -> CoprunedForecaster:
    """Set the data threshold at the median tile score of ``x``, so some tiles are kept and some skipped."""
    with torch.no_grad():
        scores = model.generator(x)
        median = tile_scores(scores, model.grid_for(*scores.shape[-2:])).median().item()
    model.config = replace(model.config, data_threshold=median)
    return model


def run(model: CoprunedForecaster, x: torch.Tensor, mode: str) -> torch.Tensor:
    with torch.no_grad():
        return model.set_mode(mode)(x)


TINY_DATA = ["--set", "data.forecast.num_train=16", "--set", "data.forecast.num_val=8",
             "--set", "data.forecast.num_test=8", "--set", "data.forecast.height=16",
             "--set", "data.forecast.width=16"]  # fmt: skip
"""``--set`` overrides of a tiny forecast split: 16 / 8 / 8 samples of 16 x 16."""
FAST = ["--epochs", "1", "--batch-size", "8", "--threads", "1"]


def train_tiny_forecaster(model: str, out: Path, *extra: str) -> Path:
    """``dance3d train --task forecast`` of zoo ``model`` on the tiny split for one epoch; its model.pt."""
    settings = ["--set", "train.num_workers=0", "--set", "train.progress=false", *TINY_DATA, *FAST, *extra]
    assert main(["train", "--task", "forecast", "--model", model, "--out", str(out), *settings]) == 0
    return out / "model.pt"


def coprune_tiny(dense: Path, out: Path, *, tile_size: int, extra: tuple[str, ...] = ()) -> Path:
    """``dance3d copruning`` of ``dense`` to half the MACs for one epoch; the run folder."""
    args = ["copruning", "--checkpoint", str(dense), "--out", str(out), "--tile-size", str(tile_size),
            "--target-mac-fraction", "0.5", "--format", "json", *extra, *FAST]  # fmt: skip
    assert main(args) == 0
    return out


def fallback_table_and_eval(run_cli, model: Path, tmp_path: Path) -> tuple[dict, Any, dict[str, dict]]:  # noqa: ANN001
    """``fallback-table`` of the co-pruned ``model`` (3 levels), then ``eval --execution compact`` without a table and
    with one whose whole map wins everywhere: (the table command's JSON report, the table, the two eval reports)."""
    from dance3d.copruning.fallback import FallbackCalibration

    table = tmp_path / "fallback.json"
    args = ["--checkpoint", str(model), "--levels", "3", "--repeats", "1", "--threads", "1"]
    code, out, err = run_cli("fallback-table", *args, "--out", str(table), "--format", "json")
    assert code == 0, err
    report, measured = json.loads(out), FallbackCalibration.load(table)
    always = FallbackCalibration(**{**measured.__dict__, "whole_ms": {k: 0.0 for k in measured.whole_ms}})
    always_path = always.save(tmp_path / "always.json")
    scores = {}
    for name, extra in {"tiles": [], "whole": ["--calibration", str(always_path)]}.items():
        code, out, err = run_cli("eval", "--checkpoint", str(model), "--execution", "compact", *extra,
                                 "--format", "json", "--threads", "1")  # fmt: skip
        assert code == 0, err
        scores[name] = json.loads(out)
    return report, measured, scores


def eval_in_both_modes(run_cli, model: Path, *extra: str) -> dict[str, dict]:  # noqa: ANN001
    """``eval --format json`` of the co-pruned ``model`` in simulate and in compact execution, asserting that both
    score alike (MSE and mean MAC fraction) and say their mode; the two reports."""
    reports = {}
    for mode in ("simulate", "compact"):
        code, out, err = run_cli("eval", "--checkpoint", str(model), "--execution", mode, "--format", "json",
                                 "--threads", "1", *extra)  # fmt: skip
        assert code == 0, err
        reports[mode] = json.loads(out)
        assert reports[mode]["execution"] == mode
    simulate, compact = reports["simulate"], reports["compact"]
    assert compact["mse_normalised"] == pytest.approx(simulate["mse_normalised"], rel=1e-5)
    assert compact["mac_fraction"] == pytest.approx(simulate["mac_fraction"])
    return reports


def assert_profile_counts_compact_macs(run_cli, model: Path) -> None:  # noqa: ANN001
    """``profile --execution compact`` of the co-pruned ``model`` counts the MACs its masks leave for the first test
    sample (the model's own ``last_macs`` on that sample)."""
    code, out, err = run_cli("profile", "--checkpoint", str(model), "--execution", "compact", "--limit", "1",
                             "--repeats", "1", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0, err
    loaded = load_model(model)
    dataset = build_dataset(checkpoint_data(loaded, argparse.Namespace(data=None, overrides=[])), "test",
                            classes=loaded.classes)  # fmt: skip
    with torch.no_grad():
        loaded.model.set_mode("compact")(dataset[0]["inputs"][None])
    assert json.loads(out)["macs"] == loaded.model.last_macs.item()
