"""CPU package energy from the Linux powercap RAPL interface (Intel, and AMD Zen via intel_rapl).

Only top-level package zones ``/sys/class/powercap/intel-rapl:N`` named ``package-*`` are summed:
their subzones (``intel-rapl:N:M``: core, uncore, dram) and the ``psys`` platform zone overlap the
packages, and ``intel-rapl-mmio:N`` repeats a package through another interface.
``energy_uj`` wraps at ``max_energy_range_uj``; one wrap per window is corrected (a window must be
shorter than a full counter period, typically minutes to hours).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profiling.meters.base import EnergyMeter, MeterError, _Measured
from profiling.meters.sysfs import SysfsPermissionError, read_int, read_text, under_root

POWERCAP_DIR = "/sys/class/powercap"
_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")

PERMISSION_HINT = (
    "RAPL energy counters are readable only by root since Linux 5.10 (CVE-2020-8694). Run as "
    "root, or grant read access until the next reboot with: "
    "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj"
)


@dataclass(frozen=True)
class RaplZone:
    """One package-level powercap zone."""

    name: str
    energy_file: Path
    max_energy_range_uj: int


def discover_packages(root: str | Path = "/") -> list[RaplZone]:
    """Package zones under ``root``; subzones, psys and mmio zones are left out."""
    zones = []
    for zone in sorted(under_root(root, POWERCAP_DIR).glob("intel-rapl:*")):
        if not _PACKAGE_ZONE.fullmatch(zone.name) or not (zone / "name").is_file():
            continue
        name = read_text(zone / "name")
        if name.startswith("package"):
            zones.append(RaplZone(name, zone / "energy_uj", read_int(zone / "max_energy_range_uj")))
    return zones


def energy_delta_uj(before_uj: int, after_uj: int, max_energy_range_uj: int) -> int:
    """Counter increase, correcting one wrap-around at ``max_energy_range_uj``."""
    if after_uj >= before_uj:
        return after_uj - before_uj
    return max_energy_range_uj - before_uj + after_uj


class RaplMeter(EnergyMeter):
    """Sum of the CPU package counters between ``begin`` and ``end``."""

    name = "rapl"
    min_window_s = 0.1

    def __init__(self, *, root: str | Path = "/", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.root = root
        self._zones: list[RaplZone] | None = None
        self._start: tuple[float, list[int]] | None = None

    def _packages(self) -> list[RaplZone]:
        if self._zones is None:
            zones = discover_packages(self.root)
            if not zones:
                raise MeterError(
                    f"no RAPL package zones under {under_root(self.root, POWERCAP_DIR)}: not an "
                    "Intel/AMD Zen CPU, a VM/container without powercap, or the intel_rapl driver is "
                    "not loaded (sudo modprobe intel_rapl_common)"
                )
            self._zones = zones
        return self._zones

    def _read(self) -> list[int]:
        try:
            return [read_int(zone.energy_file) for zone in self._packages()]
        except SysfsPermissionError as exc:
            raise MeterError(f"{exc}. {PERMISSION_HINT}") from exc

    def _probe(self) -> None:
        self._read()

    def _begin(self) -> None:
        self._start = (self._clock(), self._read())

    def _end(self) -> _Measured:
        assert self._start is not None
        (t0, before), self._start = self._start, None
        after, t1 = self._read(), self._clock()
        per_zone = {
            zone.name: energy_delta_uj(b, a, zone.max_energy_range_uj) / 1e6
            for zone, b, a in zip(self._packages(), before, after, strict=True)
        }
        return _Measured(sum(per_zone.values()), t1 - t0, per_zone)
