"""NVML meters against a patched pynvml: energy counter, power polling and the errors it raises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from profiling_fakes import FakeClock, make_hwmon

from profiling.meters import MeterError, NvmlEnergyMeter, NvmlPowerMeter, select_meter

pynvml = pytest.importorskip("pynvml")


class FakeNvml:
    """Patches pynvml's functions; ``energy_mj``/``power_mw`` are read by the device queries."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.energy_mj = 1_000
        self.power_mw = 100_000
        self.energy_error: int | None = None
        self.init_error: int | None = None
        self.inits = self.shutdowns = 0
        self.handles: list[object] = []
        monkeypatch.setattr(pynvml, "nvmlInit", self.init)
        monkeypatch.setattr(pynvml, "nvmlShutdown", self.shutdown)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: self._handle(("index", i)))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", lambda u: self._handle(("uuid", u)))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", self.energy)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", self.power)

    def _handle(self, key: object) -> object:
        self.handles.append(key)
        return key

    def init(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.inits += 1

    def shutdown(self) -> None:
        self.shutdowns += 1

    def energy(self, handle: object) -> int:
        if self.energy_error is not None:
            raise pynvml.NVMLError(self.energy_error)
        return self.energy_mj

    def power(self, handle: object) -> int:
        if self.energy_error is not None:
            raise pynvml.NVMLError(self.energy_error)
        return self.power_mw


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    return FakeNvml(monkeypatch)


def test_energy_counter_window(nvml: FakeNvml) -> None:
    clock = FakeClock(10.0)
    meter = NvmlEnergyMeter(0, clock=clock)
    assert meter.probe().ok
    meter.begin()
    nvml.energy_mj = 4_500
    clock.t = 12.0
    reading = meter.end()
    assert reading.energy_j == pytest.approx(3.5)
    assert reading.power_w == pytest.approx(1.75)
    assert reading.per_domain_j == {"gpu": pytest.approx(3.5)}
    meter.close()
    assert nvml.shutdowns == nvml.inits == 1


def test_device_by_uuid(nvml: FakeNvml) -> None:
    NvmlEnergyMeter(3, uuid="GPU-1234").probe()
    assert nvml.handles == [("uuid", "GPU-1234")]


def test_counter_reset_fails_the_window(nvml: FakeNvml) -> None:
    meter = NvmlEnergyMeter(0)
    with pytest.raises(MeterError, match="went backwards"):
        with meter.window():
            nvml.energy_mj = 10


def test_orin_not_supported_is_found_by_probing_the_query(nvml: FakeNvml) -> None:
    nvml.energy_error = pynvml.NVML_ERROR_NOT_SUPPORTED  # init works, every power query fails
    availability = NvmlEnergyMeter(0).probe()
    assert not availability.ok
    assert "nvmlDeviceGetTotalEnergyConsumption" in availability.reason
    assert "not supported" in availability.reason and "Jetson" in availability.reason
    assert "NVMLError_NotSupported" in availability.reason
    assert nvml.inits == 1


def test_no_permission(nvml: FakeNvml) -> None:
    nvml.energy_error = pynvml.NVML_ERROR_NO_PERMISSION
    reason = NvmlPowerMeter(0).probe().reason
    assert "denies this query" in reason and "NVMLError_NoPermission" in reason


def test_no_driver(nvml: FakeNvml) -> None:
    nvml.init_error = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    reason = NvmlEnergyMeter(0).probe().reason
    assert "init failed" in reason and "no NVIDIA driver" in reason


def test_pynvml_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert "pip install nvidia-ml-py" in NvmlEnergyMeter(0).probe().reason


def test_power_polling_integrates(nvml: FakeNvml) -> None:
    clock = FakeClock()
    meter = NvmlPowerMeter(0, interval_s=3600.0, clock=clock)
    meter.begin()  # 100 W
    nvml.power_mw = 200_000
    clock.t = 3.0
    assert meter.end().energy_j == pytest.approx((100 + 200) / 2 * 3)


def test_select_on_jetson_falls_through_to_rails(
    nvml: FakeNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml.energy_error = pynvml.NVML_ERROR_NOT_SUPPORTED
    monkeypatch.setitem(sys.modules, "jtop", None)
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    selection = select_meter("cuda:0", root=tmp_path)
    assert selection.ok and selection.meter is not None
    assert selection.meter.name == "jetson-ina3221"
    assert set(selection.failures) == {"nvml-energy", "nvml-power"}
    assert all("not supported" in why for why in selection.failures.values())
    assert nvml.shutdowns == 2  # rejected candidates are closed
