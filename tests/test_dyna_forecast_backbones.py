"""The dyna_forecast benchmark on the Transformer and the ConvLSTM: a tiny end-to-end run writes valid, consistent
results."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from dance3d.benchmark_results import ResultDir, validate_result
from dance3d.copruning.benchmark import DynaSettings, quick_settings, run_benchmark

METHODS = ("dense", "coupled", "data_only", "model_only", "uniform_channels", "static_crop", "random_drop")


def test_quick_settings_use_the_backbones_test_size():
    assert quick_settings(DynaSettings(backbone="stformer-tiny")).backbone == "stformer-test"
    assert quick_settings(DynaSettings(backbone="convlstm-tiny")).backbone == "convlstm-test"
    assert quick_settings(DynaSettings()).backbone == "simvp-test"


@pytest.mark.parametrize(("backbone", "widths"), [
    ("stformer-test", {"head_dim", "hidden"}),  # uniform widths: the heads' width and the MLPs'
    ("convlstm-test", {"hidden_0"}),  # the one cell's hidden width
])  # fmt: skip
def test_a_tiny_run_writes_valid_results(tmp_path, backbone, widths):
    settings = replace(
        DynaSettings(backbone=backbone, height=32, width=32, num_train=16, num_val=8, num_test=12),
        dense_epochs=1, finetune_epochs=1, batch_size=8, latency_samples=2, latency_repeats=2,
    )  # fmt: skip
    out = ResultDir(tmp_path / "results", "dyna_forecast", f"{backbone}-quick")
    payload = run_benchmark(settings, work=tmp_path / "work", out=out, quick=True, threads=1, log=lambda _: None)
    assert validate_result(payload) == [] and out.save(payload).is_file()
    assert payload["backbones"]["run"] == [backbone] and payload["settings"]["backbone"] == backbone
    records = pd.read_parquet(out.file("records.parquet"))
    assert sorted(records.method.unique()) == sorted(METHODS) and len(records) == 12 * len(METHODS)
    summary = payload["summary"]
    for name in METHODS:
        assert summary[name]["mac_fraction"] == pytest.approx(records[records.method == name]["mac_fraction"].mean())
    uniform = payload["matched"]["uniform_channels"]
    assert set(uniform) == widths | {"macs", "mac_fraction"}
    if "hidden_0" in widths:
        assert 1 <= uniform["hidden_0"] <= 8
    assert uniform["mac_fraction"] == pytest.approx(uniform["macs"] / payload["dense_macs"])
    assert summary["uniform_channels"]["mac_fraction"] == pytest.approx(uniform["mac_fraction"])
    assert payload["latency_b1_ms"]["coupled_compact"] > 0 and payload["speedup_b1"] > 0
