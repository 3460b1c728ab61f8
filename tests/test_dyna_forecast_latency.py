"""Re-timing a finished co-pruning run: dense vs compact (and SimVP's fallback) speed-ups from saved models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from copruning_helpers import coprune_tiny, train_tiny_forecaster

from dance3d.benchmark_results import validate_result
from dance3d.copruning.retime import RetimeSettings, retime
from dance3d.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dyna_forecast_latency.py"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A benchmark-shaped work folder: ``dense/model.pt``, ``coupled/model.pt`` and ``data_only/model.pt`` of a tiny
    SimVP (no ``model_only``: the re-timing times what the folder holds)."""
    work = tmp_path_factory.mktemp("work")
    dense = train_tiny_forecaster("simvp-test", work / "dense")
    coprune_tiny(dense, work / "coupled", tile_size=4)
    coprune_tiny(dense, work / "data_only", tile_size=4, extra=("--masks", "data"))
    return work, dense


def test_retiming_reports_speedups_that_follow_the_latencies(finished_run):
    work, dense = finished_run
    payload = retime(work, dense, RetimeSettings(samples=2, repeats=2, batch=3), tag="tiny")
    assert validate_result(payload) == []
    latency = payload["latency_b1_ms"]
    variants = ("coupled_compact", "coupled_compact_fallback", "data_only_compact", "data_only_compact_fallback")
    assert set(latency) == {"dense", "dense_channels_last", *variants}
    assert set(payload["fallback_calibration"]) == {"coupled", "data_only"}
    fastest_dense = min(latency["dense"], latency["dense_channels_last"])  # speed-ups read the faster dense model
    for name in variants:
        assert payload["speedup_b1"][name] == pytest.approx(fastest_dense / latency[name])
        efficiency = payload["realisation_efficiency"][name]
        assert efficiency == pytest.approx(payload["speedup_b1"][name] * payload["mac_fraction"][name])
    fractions = payload["mac_fraction"]
    assert 0 < fractions["coupled_compact"] <= 1
    assert fractions["coupled_compact_fallback"] >= fractions["coupled_compact"]  # whole maps compute more
    assert payload["batch"] == 3 and set(payload["throughput_samples_per_s"]) == set(latency)
    assert all(value > 0 for value in payload["throughput_samples_per_s"].values())
    throughput = payload["throughput_samples_per_s"]
    for name in variants:
        ratio = throughput[name] / max(throughput["dense"], throughput["dense_channels_last"])
        assert payload["speedup_batch"][name] == pytest.approx(ratio)
    best = max(payload["speedup_b1"][name] for name in variants[:2])  # the target reads the coupled model
    assert payload["targets"]["cpu_batch1_speedup_at_least_2x"] == (best >= 2.0)
    calibration = payload["fallback_calibration"]["coupled"]
    assert tuple(calibration["input_hw"]) == (16, 16)
    assert set(calibration["tiled_ms"]) == set(calibration["whole_ms"])


def test_a_folder_without_a_finished_run_is_refused(tmp_path, finished_run):
    _, dense = finished_run
    with pytest.raises(ConfigError, match="coupled/model.pt does not exist"):
        retime(tmp_path, dense, RetimeSettings(), tag="x")
    with pytest.raises(ConfigError, match="samples, repeats and batch must be >= 1"):
        RetimeSettings(batch=0)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(tmp_path), "--dense-checkpoint", str(dense),
         "--results-root", str(tmp_path / "results")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
