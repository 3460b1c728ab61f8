"""measure_latency and profile(): the report's numbers, tables and JSON form."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest
import torch
from profiling_fakes import ScriptedMeter
from torch import nn

import profiling.energy
from profiling import EstimatedEnergyModel, measure_interleaved, measure_latency, profile
from profiling.meters import MeterSelection


def test_latency_warms_up_then_times_each_repeat() -> None:
    calls = []

    def work(x: torch.Tensor) -> None:
        calls.append(torch.is_inference_mode_enabled())
        time.sleep(0.002)

    stats = measure_latency(work, torch.zeros(1), warmup=3, repeats=7)
    assert len(calls) == 10 and all(calls)
    assert stats.repeats == len(stats.samples_ms) == 7
    assert stats.warmup == 3 and stats.timer == "perf_counter" and stats.device == "cpu"
    assert 2.0 <= stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.median_ms == pytest.approx(sorted(stats.samples_ms)[3])


def test_latency_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(lambda x: x, torch.zeros(1), repeats=0)
    with pytest.raises(ValueError, match="no tensor"):
        measure_latency(lambda x: x, "not a tensor")


def test_interleaved_calls_run_round_robin_and_warm_up_untimed() -> None:
    order = []

    def call(name: str, sleep_s: float):
        def run() -> None:
            order.append((name, torch.is_inference_mode_enabled()))
            time.sleep(sleep_s)

        return run

    stats = measure_interleaved({"slow": call("slow", 0.004), "fast": call("fast", 0.001)}, warmup=2, repeats=5)
    assert [name for name, _ in order] == ["slow", "fast"] * 7 and all(mode for _, mode in order)
    assert stats["slow"].repeats == len(stats["slow"].samples_ms) == 5 and stats["slow"].warmup == 2
    assert stats["slow"].min_ms >= 4.0 and 1.0 <= stats["fast"].min_ms
    assert stats["fast"].median_ms < stats["slow"].median_ms


def test_interleaved_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure_interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        measure_interleaved({"a": lambda: None}, warmup=-1)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3, 4)))


def test_profile_report_with_a_meter() -> None:
    clip = torch.randn(1, 3, 4, 8, 8)
    meter = ScriptedMeter([0.9], duration_s=0.3)
    report = profile(TinyNet(), clip, warmup=1, repeats=3, meter=meter, min_window_s=0.0)
    assert report.macs == (4 * 4 * 8 * 8) * (3 * 27) + 4 * 2
    assert report.params == 4 * 3 * 27 + 4 + 4 * 2 + 2
    assert report.batch_size == 1 and report.device == "cpu" and report.model == "TinyNet"
    assert report.latency_repeats == 3 and report.latency_ms <= report.latency_p90_ms
    assert report.energy_source == "measured" and report.meter == "scripted"
    assert report.energy_j == pytest.approx(0.9 / report.energy_window_iterations)
    assert report.power_w == pytest.approx(3.0)
    assert isinstance(report.per_layer, pd.DataFrame)
    assert report.per_layer.set_index("layer").loc["conv", "macs"] == 4 * 4 * 8 * 8 * 3 * 27
    assert report.per_layer["macs"].sum() == report.macs
    assert set(report.per_operator["op"]) >= {"convolution", "addmm", "mean"}
    as_dict = report.to_dict()
    json.dumps(as_dict, allow_nan=False)
    assert as_dict["macs"] == report.macs
    conv_row = next(row for row in as_dict["per_layer"] if row["layer"] == "conv")
    assert conv_row["macs_analytic"] == conv_row["macs"]
    assert "per_layer" not in report.to_dict(tables=False)


def test_profile_without_meter_says_so() -> None:
    report = profile(TinyNet(), torch.randn(1, 3, 2, 4, 4), warmup=0, repeats=1, meter=None)
    assert report.energy_status == "not requested"
    assert math.isnan(report.energy_j)
    assert report.to_dict(tables=False)["energy_j"] is None


def test_profile_auto_meter_unavailable_lists_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        profiling.energy, "select_meter", lambda device: MeterSelection(None, {"rapl": "permission denied"})
    )
    report = profile(TinyNet(), torch.randn(1, 3, 2, 4, 4), warmup=0, repeats=1)
    assert report.energy_status == "unavailable: rapl: permission denied"
    assert report.energy_source == "none" and math.isnan(report.energy_j)


def test_profile_estimates_when_asked_and_labels_it() -> None:
    model = EstimatedEnergyModel(joules_per_mac=1e-12, joules_per_byte=0.0)
    report = profile(TinyNet(), torch.randn(1, 3, 2, 4, 4), warmup=0, repeats=1, meter=None, energy_model=model)
    assert report.energy_source == "estimated"
    assert report.energy_j == pytest.approx(report.macs * 1e-12)
