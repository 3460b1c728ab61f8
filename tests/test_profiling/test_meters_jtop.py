"""JtopMeter against a fake ``jtop`` shaped like jetson-stats 4.x (context manager, ok(), power)."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from profiling_fakes import FakeClock

from profiling.meters import JtopMeter


class FakeJtop:
    """``with jtop(interval=...) as jetson: while jetson.ok(): jetson.power``.

    ``schedule`` is a list of (time s, {rail: mW}); each ``ok()`` moves to the next sample and sets
    the shared clock to its time, as a real refresh would arrive; after the last one it keeps
    answering True with the same data (the service keeps running).
    """

    def __init__(self, schedule: list[tuple[float, dict[str, int]]], clock: FakeClock, interval: float) -> None:
        self.schedule, self.clock, self.interval = schedule, clock, interval
        self.index = -1
        self.exhausted = threading.Event()
        self.entered = self.exited = False

    def __enter__(self) -> FakeJtop:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True

    def ok(self) -> bool:
        if self.index + 1 < len(self.schedule):
            self.index += 1
            self.clock.t = self.schedule[self.index][0]
        else:
            self.exhausted.set()
            time.sleep(0.001)
        return True

    @property
    def power(self) -> dict:
        rails_mw = self.schedule[self.index][1]
        rail = {
            name: {
                "online": True,
                "type": "INA3221",
                "status": "ok",
                "volt": 5000,
                "curr": mw // 5,
                "power": mw,
                "avg": 123_456,  # a running mean of readings, not a time average: must be ignored
                "warn": 32760,
                "crit": 32760,
            }
            for name, mw in rails_mw.items()
        }
        total = dict(rail["VDD_IN"], name="VDD_IN")
        return {"rail": {k: v for k, v in rail.items() if k != "VDD_IN"}, "tot": total}


def test_jtop_power_is_integrated_over_its_refresh_times() -> None:
    clock = FakeClock()
    schedule = [
        (0.0, {"VDD_IN": 2000, "VDD_SOC": 500}),
        (1.0, {"VDD_IN": 4000, "VDD_SOC": 500}),
        (2.0, {"VDD_IN": 4000, "VDD_SOC": 1500}),
        (3.0, {"VDD_IN": 1000, "VDD_SOC": 500}),
    ]
    fakes: list[FakeJtop] = []

    def factory(interval: float) -> FakeJtop:
        fakes.append(FakeJtop(schedule, clock, interval))
        return fakes[-1]

    meter = JtopMeter(interval_s=0.5, jtop_factory=factory, clock=clock)
    meter.begin()
    assert fakes[0].exhausted.wait(5.0)
    reading = meter.end()
    assert reading.energy_j == pytest.approx((2 + 4) / 2 + 4 + (4 + 1) / 2)  # 9.5 J
    assert reading.duration_s == pytest.approx(3.0)
    assert reading.per_domain_j == {"VDD_SOC": pytest.approx(0.5 + 1.0 + 1.0)}
    assert fakes[0].interval == 0.5
    meter.close()
    assert fakes[0].exited


def test_board_without_power_readings() -> None:
    class NoPower(FakeJtop):
        power = {}  # jtop on a board without INA3221 sensors

    meter = JtopMeter(jtop_factory=lambda interval: NoPower([(0.0, {})], FakeClock(), interval))
    reason = meter.probe().reason
    assert "no power readings" in reason


def test_service_down_is_explained() -> None:
    def factory(interval: float) -> FakeJtop:
        raise ConnectionRefusedError("The jetson_stats.service is not active")

    reason = JtopMeter(jtop_factory=factory).probe().reason
    assert "cannot connect to jtop" in reason and "jetson_stats.service" in reason


def test_jtop_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    assert "pip install jetson-stats" in JtopMeter().probe().reason


def test_interval_below_half_a_second_is_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0.5"):
        JtopMeter(interval_s=0.1)
