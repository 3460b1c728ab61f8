"""Idle-power baseline, so both total and dynamic (above-idle) energy can be reported."""

from __future__ import annotations

import time
from dataclasses import dataclass

from profiling.meters.base import EnergyMeter


@dataclass(frozen=True)
class IdleBaseline:
    """Average power drawn while nothing runs, measured by ``meter`` over ``duration_s``."""

    power_w: float
    duration_s: float
    meter: str

    def dynamic_energy_j(self, total_energy_j: float, duration_s: float) -> float:
        """Energy above idle for a window of ``duration_s`` that measured ``total_energy_j``."""
        return total_energy_j - self.power_w * duration_s


def measure_idle_power(meter: EnergyMeter, *, duration_s: float = 5.0) -> IdleBaseline:
    """Sleep for ``duration_s`` inside a meter window (at least the meter's ``min_window_s``).

    Synchronise/quiesce the device first; raises :class:`MeterError` if the meter fails.
    """
    duration_s = max(duration_s, meter.min_window_s)
    with meter.window() as window:
        time.sleep(duration_s)
    return IdleBaseline(power_w=window.power_w, duration_s=window.duration_s, meter=meter.name)
