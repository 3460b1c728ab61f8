"""The dyna_forecast benchmark: paired tests, targets computed from the numbers, a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dance3d.benchmark_results import ResultDir, validate_result
from dance3d.copruning.benchmark import DynaSettings, coprune_run_config, run_benchmark
from dance3d.copruning.comparison import dyna_targets, paired_test, spearman
from dance3d.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dyna_forecast.py"
METHODS = ("dense", "coupled", "data_only", "model_only", "uniform_channels", "static_crop", "random_drop")


def test_paired_test_sees_a_consistent_gap_and_not_noise():
    rng = np.random.default_rng(0)
    reference = rng.uniform(1, 2, size=60)
    better = paired_test(reference, reference + 0.1 + rng.normal(0, 0.01, 60), names=("a", "b"))
    assert better.reference_ahead and better.wilcoxon_p < 1e-6
    assert better.ci95[0] < better.mean_difference < better.ci95[1] and better.ci95[0] > 0
    worse = paired_test(reference, reference - 0.1, names=("a", "b"))
    assert not worse.reference_ahead and worse.mean_difference < 0
    same = paired_test(reference, reference, names=("a", "b"))
    assert same.wilcoxon_p == 1.0 and not same.reference_ahead
    with pytest.raises(ValueError, match="equal-length"):
        paired_test(reference, reference[:-1], names=("a", "b"))


def test_spearman_is_nan_for_a_constant_side():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([0.5, 0.5, 0.5], [1, 2, 3]))


def _summary(**coupled) -> dict:
    row = {"mac_fraction": 0.5, "mse": 110.0, "csi74": 0.5}
    summary = {name: dict(row) for name in ("dense", "a", "b", "c")}
    summary["dense"].update(mac_fraction=1.0, mse=100.0)
    summary["coupled"] = {"mac_fraction": 0.35, "mse": 100.5, "csi74": 0.5, **coupled}
    return summary


def test_targets_follow_the_numbers():
    rng = np.random.default_rng(1)
    errors = rng.uniform(50, 150, size=40)
    tests = {name: paired_test(errors, errors + 5 + rng.normal(0, 1, 40), names=("coupled", name)) for name in "abc"}
    common = {"static": ["a", "b"], "single_masks": ["c"], "calm_spearman": -0.7, "speedup": 2.5}
    targets = dyna_targets(_summary(), tests, **common)
    assert all(targets.values()), targets
    assert not dyna_targets(_summary(mac_fraction=0.45), tests, **common)["mac_reduction_at_least_60pct"]
    assert not dyna_targets(_summary(mse=102.0), tests, **common)["metric_degradation_below_1pct"]
    assert not dyna_targets(_summary(csi74=0.49), tests, **common)["metric_degradation_below_1pct"]
    assert dyna_targets(_summary(mac_fraction=0.38), tests, **common)["mac_reduction_at_least_60pct"]
    # a rival that uses fewer MACs than coupled (beyond the tolerance) is not beaten at matched MACs
    cheaper = _summary()
    cheaper["a"]["mac_fraction"] = 0.2
    assert not dyna_targets(cheaper, tests, **common)["ahead_of_static_at_matched_macs"]
    flipped = dict(tests, c=paired_test(errors, errors - 5, names=("coupled", "c")))
    assert not dyna_targets(_summary(), flipped, **common)["coupled_ahead_of_single_masks"]
    assert not dyna_targets(_summary(), tests, **{**common, "calm_spearman": -0.4})[
        "spearman_calm_fraction_at_least_0.5"
    ]
    assert not dyna_targets(_summary(), tests, **{**common, "calm_spearman": float("nan")})[
        "spearman_calm_fraction_at_least_0.5"
    ]
    assert not dyna_targets(_summary(), tests, **{**common, "speedup": 1.9})["cpu_batch1_speedup_at_least_2x"]


def test_unknown_backbones_are_refused_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="got 'convlstm-huge'"):
        DynaSettings(backbone="convlstm-huge")
    done = subprocess.run([sys.executable, str(SCRIPT), "--backbone", "convlstm-huge", "--results-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "convlstm-huge" in done.stderr
    assert not list(tmp_path.iterdir())


def test_the_channel_threshold_reaches_every_co_pruned_run_and_is_checked_first():
    settings = DynaSettings(backbone="stformer-tiny", channel_threshold=0.01)
    for masks in ({"data_mask": True, "model_mask": True}, {"data_mask": False, "model_mask": True}):
        assert coprune_run_config(settings, settings.backbone, **masks).copruning.channel_threshold == 0.01
    default = coprune_run_config(DynaSettings(), "simvp-tiny", data_mask=True, model_mask=True)
    assert default.copruning.channel_threshold == 0.2
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match="--channel-threshold"):
            DynaSettings(channel_threshold=bad)


def test_a_tiny_run_writes_valid_results(tmp_path):
    settings = replace(
        DynaSettings(backbone="simvp-test", height=32, width=32, num_train=16, num_val=8, num_test=12),
        dense_epochs=1, finetune_epochs=1, batch_size=8, latency_samples=2, latency_repeats=2,
    )  # fmt: skip
    out = ResultDir(tmp_path / "results", "dyna_forecast", "tiny-quick")
    payload = run_benchmark(settings, work=tmp_path / "work", out=out, quick=True, threads=1, log=lambda _: None)
    assert validate_result(payload) == [] and out.save(payload).is_file()
    records = pd.read_parquet(out.file("records.parquet"))
    assert sorted(records.method.unique()) == sorted(METHODS) and len(records) == 12 * len(METHODS)
    assert records.groupby("method")["sample"].apply(lambda s: sorted(s.tolist()) == list(range(12))).all()
    summary = payload["summary"]
    for name in METHODS:
        mean = records[records.method == name]["mac_fraction"].mean()
        assert summary[name]["mac_fraction"] == pytest.approx(mean)
        assert summary[name]["mse"] == pytest.approx(records[records.method == name]["mse"].mean())
    assert summary["dense"]["mac_fraction"] == 1.0 and 0 < summary["uniform_channels"]["mac_fraction"] <= 1
    assert set(payload["paired_tests"]) == set(METHODS) - {"coupled"}
    latency = payload["latency_b1_ms"]
    fastest_dense = min(latency["dense"], latency["dense_channels_last"])
    assert payload["speedup_b1"] == pytest.approx(fastest_dense / latency["coupled_compact"])
    assert payload["targets"]["mac_reduction_at_least_60pct"] == (summary["coupled"]["mac_fraction"] <= 0.4)
    assert payload["backbones"] == {"run": ["simvp-test"]}
    for figure in payload["figures"]:
        assert out.file(figure).stat().st_size > 5_000


@pytest.mark.slow
def test_the_quick_script_run_writes_valid_results(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--results-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "dyna_forecast" / "default-quick" / "result.json").read_text())
    assert validate_result(result) == [] and result["quick"] and result["settings"]["backbone"] == "simvp-test"
    assert set(result["targets"]) == {
        "mac_reduction_at_least_60pct", "metric_degradation_below_1pct", "ahead_of_static_at_matched_macs",
        "coupled_ahead_of_single_masks", "spearman_calm_fraction_at_least_0.5", "cpu_batch1_speedup_at_least_2x",
    }  # fmt: skip
    records = pd.read_parquet(tmp_path / "dyna_forecast" / "default-quick" / "records.parquet")
    assert len(records) == len(METHODS) * result["settings"]["num_test"]
