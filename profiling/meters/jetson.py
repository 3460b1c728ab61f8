"""Jetson INA3221 power rails read from sysfs (hwmon on JetPack 5+, IIO on JetPack 4 / Nano).

hwmon (JetPack 5+): ``/sys/class/hwmon/hwmon*/name == ina3221``; channel ``N`` has ``inN_label``,
``inN_input`` (bus voltage, mV) and ``currN_input`` (mA). Channel 7 is the "sum of shunt voltages"
and ``NC`` labels are unconnected inputs: both are skipped.
IIO (JetPack 4, Nano): ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_N`` with
``in_powerN_input`` (mW).

Total board power: the input rail where the board has one (Nano ``POM_5V_IN``, Orin Nano/NX
``VDD_IN``), otherwise (AGX Orin) the sum of all rails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from profiling.meters.base import MeterError
from profiling.meters.polling import PollingMeter
from profiling.meters.sysfs import read_number, read_text, under_root

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
HWMON_DIR = "/sys/class/hwmon"
IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
_SUM_OF_SHUNTS_CHANNEL = 7


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel: how to read its power."""

    name: str
    layout: str  # "hwmon" or "iio"
    power_file: Path | None = None  # IIO: in_powerN_input (mW)
    voltage_file: Path | None = None  # hwmon: inN_input (mV)
    current_file: Path | None = None  # hwmon: currN_input (mA)

    def read_power_w(self) -> float:
        if self.power_file is not None:
            return read_number(self.power_file) / 1e3
        assert self.voltage_file is not None and self.current_file is not None
        return read_number(self.voltage_file) * read_number(self.current_file) / 1e6


def total_power_w(rail_powers_w: Mapping[str, float]) -> float:
    """Board power: the input rail if present, else the sum of all rails (AGX Orin)."""
    for name in TOTAL_RAILS:
        if name in rail_powers_w:
            return rail_powers_w[name]
    return sum(rail_powers_w.values())


def _hwmon_rails(root: str | Path) -> list[Rail]:
    rails = []
    for hwmon in sorted(under_root(root, HWMON_DIR).glob("hwmon*")):
        name_file = hwmon / "name"
        if not name_file.is_file() or read_text(name_file) != "ina3221":
            continue
        for label_file in sorted(hwmon.glob("in*_label")):
            match = re.fullmatch(r"in(\d+)_label", label_file.name)
            if match is None or int(match.group(1)) == _SUM_OF_SHUNTS_CHANNEL:
                continue
            label = read_text(label_file)
            channel = match.group(1)
            volt, curr = hwmon / f"in{channel}_input", hwmon / f"curr{channel}_input"
            if label.startswith("NC") or "sum of shunt" in label.lower() or not curr.is_file():
                continue
            rails.append(Rail(label, "hwmon", voltage_file=volt, current_file=curr))
    return rails


def _iio_rails(root: str | Path) -> list[Rail]:
    rails = []
    for device in sorted(Path(root).glob(IIO_GLOB)):
        for label_file in sorted(device.glob("rail_name_*")):
            channel = label_file.name.removeprefix("rail_name_")
            power = device / f"in_power{channel}_input"
            if power.is_file():
                rails.append(Rail(read_text(label_file), "iio", power_file=power))
    return rails


def discover_rails(root: str | Path = "/") -> list[Rail]:
    """All INA3221 rails under ``root``; names made unique when two chips repeat one."""
    rails = _hwmon_rails(root) or _iio_rails(root)
    seen: dict[str, int] = {}
    unique = []
    for rail in rails:
        seen[rail.name] = seen.get(rail.name, 0) + 1
        name = rail.name if seen[rail.name] == 1 else f"{rail.name}_{seen[rail.name]}"
        unique.append(Rail(name, rail.layout, rail.power_file, rail.voltage_file, rail.current_file))
    return unique


class JetsonRailMeter(PollingMeter):
    """Board energy from the INA3221 rails, polled every ``interval_s`` and integrated."""

    name = "jetson-ina3221"
    min_window_s = 1.0

    def __init__(
        self,
        *,
        root: str | Path = "/",
        interval_s: float = 0.05,
        rails: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self.root = root
        self.rail_names = tuple(rails) if rails is not None else None
        self._rails: list[Rail] | None = None

    def _selected_rails(self) -> list[Rail]:
        if self._rails is None:
            found = discover_rails(self.root)
            if not found:
                raise MeterError(
                    f"no INA3221 rails under {under_root(self.root, HWMON_DIR)} (hwmon, JetPack 5+) "
                    f"or {Path(self.root) / IIO_GLOB} (IIO, JetPack 4): not a Jetson, or the "
                    "ina3221 driver is not loaded"
                )
            if self.rail_names is not None:
                missing = sorted(set(self.rail_names) - {r.name for r in found})
                if missing:
                    raise MeterError(f"rails {missing} not found; this board has {[r.name for r in found]}")
                found = [r for r in found if r.name in self.rail_names]
            self._rails = found
        return self._rails

    def _sample(self) -> tuple[float, dict[str, float]]:
        powers_w = {rail.name: rail.read_power_w() for rail in self._selected_rails()}
        total_w = sum(powers_w.values()) if self.rail_names is not None else total_power_w(powers_w)
        return total_w, powers_w
