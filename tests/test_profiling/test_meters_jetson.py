"""Jetson INA3221 rails through the meter's real interface, on temp sysfs trees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from profiling_fakes import FakeClock, make_hwmon, make_iio, set_hwmon_rail, write

from profiling.meters import JetsonRailMeter, MeterError, discover_rails

ORIN_NANO = {"VDD_IN": (5000, 1000), "VDD_CPU_GPU_CV": (5000, 400), "VDD_SOC": (5000, 300)}
NEVER = 3600.0  # poll interval long enough that only the begin/end samples are taken


def test_hwmon_discovery_skips_unconnected_and_sum_channels(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 1, ORIN_NANO)
    write(tmp_path / "sys/class/hwmon/hwmon0/name", "cpu_thermal")  # another hwmon chip
    rails = discover_rails(tmp_path)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert {r.layout for r in rails} == {"hwmon"}
    assert rails[1].read_power_w() == pytest.approx(2.0)  # 5000 mV x 400 mA


def test_summed_current_channel_is_not_a_rail(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000), "VDD_SOC": (5000, 300)})
    assert (hwmon / "curr4_input").is_file() and not (hwmon / "curr7_input").exists()  # as the driver has it
    rails = discover_rails(tmp_path)
    assert [(r.name, r.current_file.name if r.current_file else None) for r in rails] == [
        ("VDD_IN", "curr1_input"),
        ("VDD_SOC", "curr2_input"),
    ]


def test_orin_nano_hwmon_energy_uses_the_input_rail(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, ORIN_NANO)
    clock = FakeClock(100.0)
    meter = JetsonRailMeter(root=tmp_path, interval_s=NEVER, clock=clock)
    meter.begin()  # VDD_IN = 5 W at t=100
    set_hwmon_rail(hwmon, 1, 5000, 2000)  # VDD_IN = 10 W at t=102
    clock.t = 102.0
    reading = meter.end()
    assert reading.energy_j == pytest.approx((5 + 10) / 2 * 2)  # 15 J, trapezoid
    assert reading.duration_s == pytest.approx(2.0)
    assert reading.per_domain_j["VDD_SOC"] == pytest.approx(1.5 * 2)
    assert reading.per_domain_j["VDD_CPU_GPU_CV"] == pytest.approx(2.0 * 2)
    assert reading.power_w == pytest.approx(7.5)


def test_nano_iio_layout(tmp_path: Path) -> None:
    device = make_iio(tmp_path, {"POM_5V_IN": 4000, "POM_5V_GPU": 1000, "POM_5V_CPU": 800})
    assert [r.layout for r in discover_rails(tmp_path)] == ["iio"] * 3
    clock = FakeClock()
    meter = JetsonRailMeter(root=tmp_path, interval_s=NEVER, clock=clock)
    with meter.window() as window:
        write(device / "in_power0_input", 6000)
        clock.t = 4.0
    assert window.energy_j == pytest.approx((4 + 6) / 2 * 4)  # 20 J: POM_5V_IN only
    assert window.reading is not None
    assert window.reading.per_domain_j["POM_5V_GPU"] == pytest.approx(4.0)


def test_agx_orin_without_input_rail_sums_all_rails(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, {"VDD_GPU_SOC": (5000, 600), "VDD_CPU_CV": (5000, 400), "VIN_SYS_5V0": (5000, 200)})
    make_hwmon(tmp_path, 1, {"VDDQ_VDD2_1V8AO": (5000, 100)})
    clock = FakeClock()
    meter = JetsonRailMeter(root=tmp_path, interval_s=NEVER, clock=clock)
    meter.begin()
    clock.t = 3.0
    assert meter.end().energy_j == pytest.approx((3 + 2 + 1 + 0.5) * 3)


def test_selected_rails_are_summed(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, ORIN_NANO)
    clock = FakeClock()
    meter = JetsonRailMeter(root=tmp_path, rails=["VDD_SOC"], interval_s=NEVER, clock=clock)
    meter.begin()
    clock.t = 2.0
    assert meter.end().energy_j == pytest.approx(3.0)
    with pytest.raises(MeterError, match="GPU_X"):
        JetsonRailMeter(root=tmp_path, rails=["GPU_X"]).begin()


def test_background_polling_integrates_constant_power_exactly(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    meter = JetsonRailMeter(root=tmp_path, interval_s=0.005)
    with meter.window() as window:
        time.sleep(0.05)
    assert window.duration_s >= 0.05
    assert window.energy_j == pytest.approx(5.0 * window.duration_s, rel=1e-9)


def test_rail_vanishing_mid_window_fails_the_window(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    meter = JetsonRailMeter(root=tmp_path, interval_s=0.005)
    meter.begin()
    (hwmon / "curr1_input").unlink()
    time.sleep(0.05)
    with pytest.raises(MeterError, match="sampling failed during the window.*curr1_input"):
        meter.end()


def test_not_a_jetson_explains(tmp_path: Path) -> None:
    availability = JetsonRailMeter(root=tmp_path).probe()
    assert not availability.ok
    assert "no INA3221 rails" in availability.reason
    assert "hwmon" in availability.reason and "IIO" in availability.reason


def test_window_misuse_is_a_clear_error(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, ORIN_NANO)
    meter = JetsonRailMeter(root=tmp_path, interval_s=NEVER, clock=FakeClock())
    with pytest.raises(RuntimeError, match="without begin"):
        meter.end()
    with meter.window() as window:
        with pytest.raises(RuntimeError, match="still open"):
            _ = window.energy_j
    assert window.energy_j == 0.0  # zero elapsed time on the fake clock
