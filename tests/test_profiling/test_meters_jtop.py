"""JtopMeter against a fake jetson-stats 4.2 client and service (real time, blocking ``ok()``)."""

from __future__ import annotations

import sys
import time

import pytest
from profiling_fakes import FakeJtop

from profiling.meters import JtopMeter, MeterError

ORIN_NANO_MW = {"VDD_IN": 5000, "VDD_CPU_GPU_CV": 2000, "VDD_SOC": 1000}


def jtop_meter(fake: FakeJtop, *, interval_s: float = 0.5) -> JtopMeter:
    return JtopMeter(interval_s=interval_s, jtop_factory=lambda interval: fake)


def test_constant_power_is_integrated_over_the_window() -> None:
    fake = FakeJtop(ORIN_NANO_MW, interval=0.5, server_interval=0.03)
    meter = jtop_meter(fake)
    with meter.window() as window:
        time.sleep(0.3)
    assert window.duration_s == pytest.approx(0.3, abs=0.05)
    assert window.power_w == pytest.approx(5.0)  # VDD_IN, jtop's "tot" on this board
    assert window.reading is not None
    assert window.reading.per_domain_j["VDD_SOC"] == pytest.approx(1.0 * window.duration_s)
    meter.close()
    assert fake.exited


def test_window_edges_are_the_workload_edges_not_the_next_refresh() -> None:
    fake = FakeJtop(ORIN_NANO_MW, interval=0.5, server_interval=0.2)
    meter = jtop_meter(fake)
    meter.probe()
    fake.wait_publication()
    meter.begin()
    time.sleep(0.25)  # the workload ends 0.05 s after a refresh: the next one is 0.15 s away
    fake.rails_mw["VDD_IN"] = 50_000  # what the board draws after the workload
    reading = meter.end()
    assert reading.duration_s == pytest.approx(0.25, abs=0.07)
    assert reading.power_w == pytest.approx(5.0)  # the post-workload 50 W is outside the window
    meter.close()


def test_a_service_that_stops_publishing_fails_the_window() -> None:
    fake = FakeJtop(ORIN_NANO_MW, interval=0.5, server_interval=0.03)
    meter = jtop_meter(fake)
    meter.begin()
    fake.stall()  # ok() returns False after 3 intervals without data
    time.sleep(0.3)
    fake.resume()
    time.sleep(0.1)
    with pytest.raises(MeterError, match=r"no data for 0\.09 s inside the window"):
        meter.end()
    meter.close()


def test_a_stalled_service_at_connection_is_unavailable() -> None:
    fake = FakeJtop(ORIN_NANO_MW, interval=0.5, server_interval=0.03)
    fake.stall()
    assert "jtop delivered no data" in jtop_meter(fake).probe().reason


@pytest.mark.parametrize(("server_s", "window_s"), [(1.0, 10.0), (0.05, 2.0)])
def test_min_window_follows_the_services_real_interval(server_s: float, window_s: float) -> None:
    fake = FakeJtop(ORIN_NANO_MW, interval=0.5, server_interval=server_s)
    meter = jtop_meter(fake)  # asks for 0.5 s; the service keeps its first client's interval
    assert meter.probe().ok
    assert (meter.interval_s, meter.min_window_s) == (server_s, window_s)
    meter.close()


def test_agx_orin_total_is_the_ina3221_rails_without_the_usb_c_supply() -> None:
    rails = {"VDD_GPU_SOC": 6000, "VDD_CPU_CV": 4000, "VIN_SYS_5V0": 2000}
    fake = FakeJtop(rails, interval=0.5, server_interval=0.03, supplies_mw={"USBC000:001": 15000})
    meter = jtop_meter(fake)
    with meter.window() as window:
        time.sleep(0.2)
    assert fake.power["tot"]["power"] == 27000  # jtop's own total counts the USB-C PD entry
    assert window.power_w == pytest.approx(12.0)
    assert window.reading is not None and "USBC000:001" not in window.reading.per_domain_j
    meter.close()


def test_board_without_power_readings() -> None:
    fake = FakeJtop({}, interval=0.5, server_interval=0.03)
    assert "no power readings" in jtop_meter(fake).probe().reason


def test_service_down_is_explained() -> None:
    def factory(interval: float) -> FakeJtop:
        raise ConnectionRefusedError("The jetson_stats.service is not active")

    reason = JtopMeter(jtop_factory=factory).probe().reason
    assert "cannot connect to jtop" in reason and "jetson_stats.service" in reason and "same jetson-stats" in reason


def test_jtop_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    assert "pip install jetson-stats" in JtopMeter().probe().reason


def test_interval_below_half_a_second_is_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0.5"):
        JtopMeter(interval_s=0.1)
