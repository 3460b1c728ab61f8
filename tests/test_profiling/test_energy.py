"""Energy per call, idle baseline, the estimated model and meter selection."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from profiling_fakes import ScriptedMeter, make_hwmon, make_powercap

from profiling import EstimatedEnergyModel, measure_energy, measure_idle_power, select_meter
from profiling.energy import estimate_energy, timed_window_s
from profiling.meters import JetsonRailMeter, MeterError
from profiling.meters.idle import IdleBaseline


def test_energy_per_call_is_window_energy_over_iterations() -> None:
    calls = []
    meter = ScriptedMeter([6.0], duration_s=3.0)
    result = measure_energy(lambda x: calls.append(x), torch.zeros(1), meter=meter, min_iterations=4)
    assert len(calls) == result.window_iterations == 4
    assert result.energy_j == pytest.approx(1.5)
    assert (result.energy_source, result.energy_status, result.meter) == ("measured", "ok", "scripted")
    assert result.window_energy_j == 6.0 and result.window_s == 3.0 and result.power_w == 2.0
    assert result.window_start_epoch_s <= result.window_end_epoch_s
    assert math.isnan(result.dynamic_energy_j)


def test_window_is_at_least_the_requested_length() -> None:
    result = measure_energy(lambda x: None, torch.zeros(1), meter=ScriptedMeter([1.0]), min_window_s=0.05)
    assert result.window_iterations > 1


def test_timed_window_without_a_meter_spans_twenty_rail_log_samples() -> None:
    result = measure_energy(lambda x: None, torch.zeros(1), meter=None, unavailable_reason="rails logged apart")
    assert result.window_s >= 1.0  # >= max(1 s, 20 x the logger's 50 ms), not ~3 calls
    assert result.window_end_epoch_s - result.window_start_epoch_s >= 1.0
    assert result.energy_status == "unavailable: rails logged apart"


def test_timed_window_that_would_hold_under_ten_log_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than 10 rail-log samples"):
        measure_energy(lambda x: None, torch.zeros(1), meter=None, min_window_s=0.03)
    assert timed_window_s(0.2) == pytest.approx(4.0)  # 20 samples of a 200 ms logger


def test_dynamic_energy_subtracts_idle() -> None:
    idle = IdleBaseline(power_w=0.5, duration_s=10.0, meter="scripted")
    meter = ScriptedMeter([6.0], duration_s=3.0)
    result = measure_energy(lambda x: None, torch.zeros(1), meter=meter, min_iterations=2, idle=idle)
    assert result.idle_power_w == 0.5
    assert result.dynamic_energy_j == pytest.approx((6.0 - 0.5 * 3.0) / 2)


def test_failing_meter_marks_the_result_instead_of_raising() -> None:
    meter = ScriptedMeter([MeterError("sensor vanished")])
    result = measure_energy(lambda x: None, torch.zeros(1), meter=meter)
    assert result.energy_status == "failed: sensor vanished"
    assert math.isnan(result.energy_j)
    assert result.energy_source == "none"


def test_work_that_raises_aborts_the_window() -> None:
    def boom(x: torch.Tensor) -> None:
        raise RuntimeError("model bug")

    meter = ScriptedMeter([1.0])
    with pytest.raises(RuntimeError, match="model bug"):
        measure_energy(boom, torch.zeros(1), meter=meter)
    meter.begin()  # the aborted window was closed, so a new one can open
    assert meter.end().energy_j == 1.0


def test_idle_baseline_from_rails(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 600)})
    meter = JetsonRailMeter(root=tmp_path, interval_s=0.01)
    meter.min_window_s = 0.0
    baseline = measure_idle_power(meter, duration_s=0.05)
    assert baseline.power_w == pytest.approx(3.0)
    assert baseline.duration_s >= 0.05
    assert baseline.meter == "jetson-ina3221"
    assert baseline.dynamic_energy_j(10.0, 2.0) == pytest.approx(4.0)


def test_estimated_model_fit_recovers_coefficients() -> None:
    truth = EstimatedEnergyModel(joules_per_mac=2e-12, joules_per_byte=5e-11, static_power_w=1.5)
    runs = [(1e9, 2e8, 0.01), (4e9, 1e8, 0.03), (2e9, 8e8, 0.02), (8e9, 4e8, 0.08)]
    energies = [truth.estimate_j(macs=m, bytes_moved=b, latency_s=t) for m, b, t in runs]
    fitted = EstimatedEnergyModel.fit(
        macs=[r[0] for r in runs],
        bytes_moved=[r[1] for r in runs],
        latency_s=[r[2] for r in runs],
        energy_j=energies,
        device="test-board",
    )
    assert fitted.joules_per_mac == pytest.approx(2e-12, rel=1e-6)
    assert fitted.joules_per_byte == pytest.approx(5e-11, rel=1e-6)
    assert fitted.static_power_w == pytest.approx(1.5, rel=1e-6)
    assert (fitted.device, fitted.fitted_rows) == ("test-board", 4)


def test_estimated_model_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        EstimatedEnergyModel.fit(macs=[1.0], bytes_moved=[1.0], latency_s=[1.0], energy_j=[1.0])
    with pytest.raises(ValueError, match="finite"):
        EstimatedEnergyModel.fit(macs=[1, 2, 3], bytes_moved=[1, 2, 3], latency_s=[1, 2, 3], energy_j=[1, math.nan, 3])
    with pytest.raises(ValueError, match="joules_per_mac must be >= 0"):
        EstimatedEnergyModel(joules_per_mac=-1.0, joules_per_byte=0.0)


def test_estimate_is_labelled_estimated() -> None:
    model = EstimatedEnergyModel(joules_per_mac=1e-9, joules_per_byte=1e-9, static_power_w=2.0)
    result = estimate_energy(model, macs=1_000_000, bytes_moved=500_000, latency_s=0.01)
    assert result.energy_source == "estimated" and result.meter == "estimated"
    assert result.energy_j == pytest.approx(1e-3 + 5e-4 + 0.02)
    assert result.dynamic_energy_j == pytest.approx(1.5e-3)


def test_select_prefers_rapl_on_cpu_and_explains_every_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    none_here = select_meter("cpu", root=tmp_path)
    assert not none_here.ok
    assert list(none_here.failures) == ["rapl", "jetson-ina3221", "jtop"]
    assert "rapl: no RAPL package zones" in none_here.reason
    make_powercap(tmp_path, {0: 1})
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    chosen = select_meter("cpu", root=tmp_path)
    assert chosen.meter is not None and chosen.meter.name == "rapl" and chosen.reason == ""


def test_select_unknown_device_kind() -> None:
    with pytest.raises(ValueError, match="cuda"):
        select_meter("mps")


def test_idle_baseline_from_another_meter_is_refused() -> None:
    idle = IdleBaseline(power_w=0.5, duration_s=10.0, meter="rapl")
    with pytest.raises(ValueError, match="measured with 'rapl'"):
        measure_energy(lambda x: None, torch.zeros(1), meter=ScriptedMeter([1.0]), idle=idle)
