"""RAPL powercap through the meter's real interface: wrap-around, overlapping zones, permissions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from profiling_fakes import FakeClock, RaplCounter, make_powercap, write

from profiling.meters import MeterError, RaplMeter, discover_packages
from profiling.meters.rapl import energy_delta_uj

MAX_UJ = 262_143_328_850


def test_only_package_zones_are_summed(tmp_path: Path) -> None:
    make_powercap(tmp_path, {0: 1_000, 1: 2_000})
    zones = discover_packages(tmp_path)
    assert [z.name for z in zones] == ["package-0", "package-1"]  # no core subzone, psys or mmio
    assert all(z.max_energy_range_uj == MAX_UJ for z in zones)


def test_counter_advancing_in_real_time(tmp_path: Path) -> None:
    base = make_powercap(tmp_path, {0: 0})
    meter = RaplMeter(root=tmp_path)
    with RaplCounter(base, power_w=20.0), meter.window() as window:
        time.sleep(0.2)
    assert window.power_w == pytest.approx(20.0, rel=0.1)


def test_energy_with_a_wrap_between_begin_and_end(tmp_path: Path) -> None:
    base = make_powercap(tmp_path, {0: MAX_UJ - 1_000_000, 1: 5_000_000})
    clock = FakeClock(50.0)
    meter = RaplMeter(root=tmp_path, clock=clock)
    meter.begin()
    write(base / "intel-rapl:0/energy_uj", 2_000_000)  # wrapped: 1 J before the top + 2 J after
    write(base / "intel-rapl:1/energy_uj", 9_500_000)  # 4.5 J
    write(base / "intel-rapl:0/intel-rapl:0:0/energy_uj", 9 * 10**10)  # subzone moves: ignored
    write(base / "intel-rapl:2/energy_uj", 9 * 10**10)  # psys moves: ignored
    clock.t = 52.0
    reading = meter.end()
    assert reading.per_domain_j == {"package-0": pytest.approx(3.0), "package-1": pytest.approx(4.5)}
    assert reading.energy_j == pytest.approx(7.5)
    assert reading.duration_s == pytest.approx(2.0)
    assert reading.meter == "rapl"


def test_delta_without_wrap() -> None:
    assert energy_delta_uj(100, 350, MAX_UJ) == 250
    assert energy_delta_uj(MAX_UJ - 10, 5, MAX_UJ) == 15


def test_root_only_counter_explains_the_fix(tmp_path: Path, non_root_permissions: None) -> None:
    base = make_powercap(tmp_path, {0: 1_000})
    (base / "intel-rapl:0/energy_uj").chmod(0o400)  # root-only, as on kernels >= 5.10
    meter = RaplMeter(root=tmp_path)
    availability = meter.probe()
    assert not availability.ok
    assert "permission denied" in availability.reason
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in availability.reason
    assert "5.10" in availability.reason
    with pytest.raises(MeterError, match="root"):
        meter.begin()


def test_no_powercap_explains(tmp_path: Path) -> None:
    availability = RaplMeter(root=tmp_path).probe()
    assert not availability.ok
    assert "no RAPL package zones" in availability.reason
    assert "modprobe intel_rapl_common" in availability.reason
