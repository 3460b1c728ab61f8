"""The dyna_forecast benchmark on traffic and weather: source-specific channels, calm fractions, CSI and tags."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from dance3d.benchmark_results import ResultDir, validate_result
from dance3d.copruning.benchmark import DynaSettings, csi_level, data_config, result_tag, run_benchmark
from dance3d.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dyna_forecast.py"
VARIABLES = {"traffic": ["inflow", "outflow"], "weather": ["t2m", "z500"]}
FRAMES = {"traffic": (6, 4), "weather": (4, 4)}


def _tiny(source: str, backbone: str) -> DynaSettings:
    return replace(
        DynaSettings(source=source, backbone=backbone, height=32, width=32, num_train=16, num_val=8, num_test=12),
        dense_epochs=1, finetune_epochs=1, batch_size=8, latency_samples=2, latency_repeats=2,
    )  # fmt: skip


def _check_run(tmp_path: Path, source: str, backbone: str) -> None:
    out = ResultDir(tmp_path / "results", "dyna_forecast", f"{source}-quick")
    payload = run_benchmark(
        _tiny(source, backbone), work=tmp_path / "work", out=out, quick=True, threads=1, log=lambda _: None
    )
    assert validate_result(payload) == [] and out.save(payload).is_file()
    assert payload["settings"]["source"] == source and payload["settings"]["data"]["source"] == source
    shape = payload["data_shape"]
    assert shape["variables"] == VARIABLES[source] and shape["channels"] == 2
    assert (shape["t_in"], shape["t_out"]) == FRAMES[source]
    records = pd.read_parquet(out.file("records.parquet"))
    coupled = records[records.method == "coupled"]
    assert len(coupled) == 12 and coupled["calm_fraction"].nunique() > 1
    assert coupled["calm_fraction"].between(0, 1).all()
    # the calm fractions are the dataset's, sample by sample, in every method's rows
    assert (records.groupby("sample")["calm_fraction"].nunique() == 1).all()
    summary = payload["summary"]
    assert payload["csi_level"] is None
    assert all(math.isnan(row["csi74"]) for row in summary.values())
    assert set(summary["dense"]["rmse_per_variable"]) == set(VARIABLES[source])
    # without CSI the degradation target is the MSE condition alone, and the note says so
    mse_ok = summary["coupled"]["mse"] <= 1.01 * summary["dense"]["mse"]
    assert payload["targets"]["metric_degradation_below_1pct"] == mse_ok
    note = payload["target_notes"]["metric_degradation_below_1pct"]
    assert "MSE only" in note and source in note and "VIL" not in note
    for figure in payload["figures"]:
        assert out.file(figure).stat().st_size > 5_000
    with pytest.raises(ConfigError, match=f"trained on '{source}'"):
        run_benchmark(replace(_tiny(source, backbone), source="storms"), work=tmp_path / "other", out=out,
                      quick=True, threads=1, dense_checkpoint=tmp_path / "work" / "dense" / "model.pt")  # fmt: skip


def test_traffic_with_simvp_writes_a_source_specific_result(tmp_path):
    _check_run(tmp_path, "traffic", "simvp-test")


def test_weather_with_the_transformer_writes_a_source_specific_result(tmp_path):
    _check_run(tmp_path, "weather", "stformer-test")


@pytest.mark.slow
@pytest.mark.parametrize(("source", "backbone"), [("traffic", "stformer-test"), ("weather", "simvp-test")])
def test_the_other_source_backbone_pairs(tmp_path, source, backbone):
    _check_run(tmp_path, source, backbone)


def test_sources_set_the_data_and_the_csi_level():
    assert data_config(DynaSettings()).source == "storms" and csi_level("storms") == "74"
    assert data_config(DynaSettings(source="weather")).source == "weather" and csi_level("weather") is None
    with pytest.raises(ConfigError, match="choose one of storms, traffic, weather"):
        DynaSettings(source="grid:iris-air-temp")


def test_tags_keep_each_sources_results_apart():
    assert result_tag(None, "storms") == "default" and result_tag(None, "traffic") == "traffic"
    assert result_tag("traffic-transformer", "traffic") == "traffic-transformer"
    assert result_tag("transformer", "storms") == "transformer"
    for tag, source in (("default", "traffic"), ("transformer", "weather"), ("weather", "traffic")):
        with pytest.raises(ConfigError, match=f"--tag '{tag}'"):
            result_tag(tag, source)
    with pytest.raises(ConfigError, match="another source's results"):
        result_tag("traffic-transformer", "storms")


def test_a_bad_source_is_one_line_from_the_cli(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--source", "radar", "--results-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "choose one of storms, traffic, weather" in done.stderr
    assert not list(tmp_path.iterdir())
