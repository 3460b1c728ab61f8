"""Faithful fakes for the profiling tests: sysfs trees (hwmon, IIO, powercap), clocks, meters."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from profiling.meters.base import EnergyMeter, MeterError, _Measured


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def make_hwmon(root: Path, index: int, rails: dict[str, tuple[float, float]]) -> Path:
    """A JetPack 5+ ``ina3221`` hwmon chip laid out as the Linux driver does.

    Three channels: the given rails (mV, mA) in order, the rest labelled ``NC``. Per channel N:
    ``inN_label``, ``inN_input`` (bus mV), ``currN_input`` (mA), ``currN_max``/``currN_crit`` and their
    alarms, ``shuntN_resistor`` (uOhm), ``in{N+3}_input`` (shunt uV). ``in7_input``/``in7_label`` are
    the sum of the shunt voltages and ``curr4_input`` the summed current (there is no ``curr7_input``);
    ``samples`` and ``update_interval`` (ms) hold the averaging settings (the chip's reset defaults).
    """
    if len(rails) > 3:
        raise ValueError(f"an INA3221 has three channels, got {len(rails)} rails")
    hwmon = root / "sys/class/hwmon" / f"hwmon{index}"
    write(hwmon / "name", "ina3221")
    channels = [*rails.items(), *[("NC", (0.0, 0.0))] * (3 - len(rails))]
    for channel, (label, (mv, ma)) in enumerate(channels, start=1):
        write(hwmon / f"in{channel}_label", label)
        write(hwmon / f"in{channel}_input", mv)
        write(hwmon / f"in{channel + 3}_input", int(ma * 5))  # shunt voltage (uV) across 5 mOhm
        write(hwmon / f"curr{channel}_input", ma)
        write(hwmon / f"shunt{channel}_resistor", 5000)
        for limit in ("max", "crit"):
            write(hwmon / f"curr{channel}_{limit}", "32760")
            write(hwmon / f"curr{channel}_{limit}_alarm", "0")
    write(hwmon / "in7_label", "sum of shunt voltages")
    write(hwmon / "in7_input", sum(int(ma * 5) for _, (_, ma) in channels))
    write(hwmon / "curr4_input", sum(ma for _, (_, ma) in channels))  # summed current: not a rail
    write(hwmon / "curr4_crit", "32760")
    write(hwmon / "samples", 1)
    write(hwmon / "update_interval", 6)
    return hwmon


def set_hwmon_rail(hwmon: Path, channel: int, mv: float, ma: float) -> None:
    write(hwmon / f"in{channel}_input", mv)
    write(hwmon / f"curr{channel}_input", ma)


def make_iio(root: Path, rails_mw: dict[str, float]) -> Path:
    """JetPack 4 (Nano) IIO ina3221x device with rail_name_N / in_powerN_input (mW)."""
    device = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for channel, (label, mw) in enumerate(rails_mw.items()):
        write(device / f"rail_name_{channel}", label)
        write(device / f"in_power{channel}_input", mw)
        write(device / f"in_voltage{channel}_input", 5000)
        write(device / f"in_current{channel}_input", mw / 5)
    return device


def meters_look_under(root: Path, monkeypatch) -> Path:  # noqa: ANN001
    """Point every meter's sysfs paths (RAPL, INA3221) under ``root`` and hide jtop, so meter selection sees only
    what a test writes there; ``root``."""
    import sys

    from profiling.meters import jetson, rapl

    monkeypatch.setattr(rapl, "POWERCAP_DIR", str(root / "sys/class/powercap"))
    monkeypatch.setattr(jetson, "HWMON_DIR", str(root / "sys/class/hwmon"))
    monkeypatch.setattr(jetson, "IIO_GLOB", str(root / "sys/bus/i2c/drivers/ina3221x/*/iio:device*").lstrip("/"))
    monkeypatch.setitem(sys.modules, "jtop", None)
    return root


def make_powercap(root: Path, packages_uj: dict[int, int], *, max_range_uj: int = 262143328850) -> Path:
    """A powercap tree as Linux lays it out, with the zones a meter must not sum.

    ``intel-rapl`` (the control type), package zones ``intel-rapl:N``; their subzones (core, dram)
    both inside the package and as top-level entries ``intel-rapl:N:M`` (sysfs links every zone
    there); a ``psys`` platform zone; an ``intel-rapl-mmio:0`` repeat of package 0.
    """
    base = root / "sys/class/powercap"
    write(base / "intel-rapl" / "enabled", 1)

    def zone(path: Path, name: str, energy_uj: int) -> None:
        write(path / "name", name)
        write(path / "energy_uj", energy_uj)
        write(path / "max_energy_range_uj", max_range_uj)
        write(path / "enabled", 1)

    for index, energy_uj in packages_uj.items():
        zone(base / f"intel-rapl:{index}", f"package-{index}", energy_uj)
        for sub, name in enumerate(("core", "dram")):
            zone(base / f"intel-rapl:{index}" / f"intel-rapl:{index}:{sub}", name, 10**9)
            zone(base / f"intel-rapl:{index}:{sub}", name, 10**9)
    zone(base / f"intel-rapl:{len(packages_uj)}", "psys", 5 * 10**9)
    zone(base / "intel-rapl-mmio:0", "package-0", 7 * 10**9)
    return base


def set_rapl_energy(base: Path, index: int, energy_uj: int) -> None:
    """Move a package counter the way the kernel does: readers see the old or the new value, whole."""
    target = base / f"intel-rapl:{index}" / "energy_uj"
    tmp = target.with_name(".energy_uj.tmp")
    tmp.write_text(f"{energy_uj}\n")
    os.replace(tmp, target)


class RaplCounter:
    """A package-0 counter that advances at ``power_w`` in real time (a thread rewriting ``energy_uj``)."""

    def __init__(self, base: Path, *, power_w: float, period_s: float = 0.001) -> None:
        self.base, self.power_w, self.period_s = base, power_w, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.period_s):
            set_rapl_energy(self.base, 0, int(self.power_w * (time.monotonic() - start) * 1e6))

    def __enter__(self) -> RaplCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class ScriptedMeter(EnergyMeter):
    """A meter whose windows return scripted energies (or raise scripted MeterErrors)."""

    name = "scripted"
    min_window_s = 0.0

    def __init__(self, script: list[float | MeterError], *, duration_s: float = 2.0) -> None:
        super().__init__()
        self.script = list(script)
        self.duration_s = duration_s
        self.windows = 0
        self.closed = False

    def _probe(self) -> None:
        pass

    def _begin(self) -> None:
        self.windows += 1

    def _end(self) -> _Measured:
        item = self.script.pop(0)
        if isinstance(item, MeterError):
            raise item
        return _Measured(item, self.duration_s, {})

    def close(self) -> None:
        self.closed = True


class FakeJtop:
    """A jetson-stats 4.2 ``jtop`` client and its service, in real time.

    The service publishes every ``server_interval`` s (the interval of the service's first client,
    which may differ from the one this client asked for; ``jetson.interval`` reports the real one).
    ``ok()`` blocks until the next publication and returns False, without raising, when none comes
    within three intervals, as jtop does. ``power`` is built as jtop builds it: INA3221 channels have
    ``type`` "I2C", power-supply entries ``type`` "SYSTEM" (the ``ucsi-source-psy-`` prefix dropped);
    an input rail (``VDD_IN``/``POM_5V_IN``) is moved to ``tot`` with its name, otherwise ``tot``
    sums every entry, power supplies included. ``stall()``/``resume()`` stop and restart publishing.
    """

    def __init__(
        self,
        rails_mw: dict[str, int],
        *,
        interval: float,
        server_interval: float | None = None,
        supplies_mw: dict[str, int] | None = None,
    ) -> None:
        self.rails_mw = dict(rails_mw)  # tests change it while the service runs
        self.supplies_mw = dict(supplies_mw or {})
        self.requested_interval = interval
        self.interval = server_interval if server_interval is not None else interval
        self._trigger = threading.Event()
        self._published = threading.Event()
        self._running = threading.Event()
        self._stalled = threading.Event()
        self._power: dict = {}
        self._thread: threading.Thread | None = None
        self.exited = False

    def _entry(self, mw: int, kind: str) -> dict:
        return {"type": kind, "volt": 5000, "curr": mw // 5, "power": mw, "avg": 123_456, "warn": 32760, "unit": "m"}

    def _publish(self) -> None:
        rail = {name: self._entry(mw, "I2C") for name, mw in self.rails_mw.items()}
        rail.update({name: self._entry(mw, "SYSTEM") for name, mw in self.supplies_mw.items()})
        total_name = next((n for n in rail if n in ("POM_5V_IN", "VDD_IN")), "")
        if total_name:
            total = dict(rail.pop(total_name), name=total_name)
        else:
            total = {"power": sum(e["power"] for e in rail.values()), "avg": 0, "unit": "m"}
        self._power = {"rail": rail, "tot": total}
        self._published.set()
        self._trigger.set()

    def _service(self) -> None:
        while self._running.is_set():
            if not self._stalled.is_set():
                self._publish()
            time.sleep(self.interval)

    def __enter__(self) -> FakeJtop:
        self._running.set()
        self._thread = threading.Thread(target=self._service, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.clear()
        self.exited = True

    def ok(self) -> bool:
        if not self._trigger.wait(self.interval * 3):
            return False
        self._trigger.clear()
        return True

    @property
    def power(self) -> dict:
        return self._power

    def wait_publication(self) -> None:
        """Return just after the service's next publication."""
        self._published.clear()
        assert self._published.wait(10.0)

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()


def make_jetson_conditions(root: Path, *, pinned: bool) -> None:
    """An Orin Nano's power-mode, release and clock files (JetPack 5.1.2, power mode 0 = 15W)."""
    write(
        root / "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    )
    write(root / "var/lib/nvpmodel/status", "pmode:0000 fmode:quiet")
    write(
        root / "etc/nvpmodel.conf", "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=1 NAME=7W >"
    )
    for policy in ("policy0", "policy4"):
        cpufreq = root / "sys/devices/system/cpu/cpufreq" / policy
        write(cpufreq / "scaling_governor", "schedutil")
        write(cpufreq / "scaling_min_freq", 1510400 if pinned else 115200)
        write(cpufreq / "scaling_max_freq", 1510400)
    gpu = root / "sys/class/devfreq/17000000.ga10b"
    write(gpu / "cur_freq", 624750000)
    write(gpu / "min_freq", 624750000 if pinned else 306000000)
    write(gpu / "max_freq", 624750000)
