"""Re-timing a finished co-pruning run: dense vs compact (and SimVP's fallback) speed-ups from saved models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from copruning_helpers import coprune_tiny, train_tiny_forecaster
from test_profiling.profiling_fakes import ScriptedMeter

from dance3d.benchmark_results import validate_result
from dance3d.copruning.retime import RetimeSettings, retime
from dance3d.errors import ConfigError
from profiling.meters import MeterError

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


def test_retiming_measures_joules_per_sample_with_the_meter_it_is_given(finished_run):
    """Windows in order: idle, then each model at batch 1 and at the batch; the energy per sample is the window's
    energy over its calls and the samples per call, and a saving is the less costly dense model's over the model's."""
    work, dense = finished_run
    models = ("dense", "dense_channels_last", "coupled_compact", "coupled_compact_fallback", "data_only_compact",
              "data_only_compact_fallback")  # fmt: skip
    script = [1.0] + [float(j) for j in range(1, 2 * len(models) + 1)]
    meter = ScriptedMeter(script, duration_s=1.0)
    settings = RetimeSettings(samples=2, repeats=1, batch=3, energy_window_s=0.01)
    energy = retime(work, dense, settings, tag="tiny", meter=meter)["energy"]
    assert energy["meter"] == "scripted" and energy["status"] == "ok" and energy["idle_power_w"] == 1.0
    assert not meter.closed, "a meter passed in belongs to the caller"
    per_sample, calls = energy["energy_per_sample_mj"], energy["calls_in_window"]
    for i, name in enumerate(models):
        for case, samples, window_j in (("b1", 2, script[1 + 2 * i]), ("batch", 3, script[2 + 2 * i])):
            assert calls[case][name] >= 1
            assert per_sample[case][name] == pytest.approx(window_j * 1e3 / (calls[case][name] * samples))
    for case in ("b1", "batch"):
        cheaper_dense = min(per_sample[case]["dense"], per_sample[case]["dense_channels_last"])
        assert set(energy["saving"][case]) == set(models[2:])
        for name in models[2:]:
            assert energy["saving"][case][name] == pytest.approx(cheaper_dense / per_sample[case][name])


def test_retiming_says_why_there_is_no_energy(finished_run):
    work, dense = finished_run
    settings = RetimeSettings(samples=1, repeats=1, batch=2, energy_window_s=0.01)
    assert retime(work, dense, settings, tag="tiny")["energy"] == {"meter": "none", "status": "not requested"}
    failing = retime(work, dense, settings, tag="tiny", meter=ScriptedMeter([MeterError("counter went away")]))
    assert failing["energy"] == {"meter": "scripted", "status": "failed: counter went away"}
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda, cuda:N or mps, got 'abacus'"):
        RetimeSettings(device="abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            RetimeSettings(device="cuda")


@pytest.mark.gpu
def test_retiming_on_a_gpu_times_and_measures_there(finished_run):
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    work, dense = finished_run
    settings = RetimeSettings(samples=2, repeats=2, batch=3, device="cuda", energy_window_s=0.5)
    payload = retime(work, dense, settings, tag="tiny-gpu", meter="auto")
    assert all(ms > 0 for ms in payload["latency_b1_ms"].values())
    assert payload["energy"]["status"] == "ok" or payload["energy"]["status"].startswith("unavailable")
