"""NVML meters against a patched pynvml: energy counter, power polling and the errors it raises."""

from __future__ import annotations

import sys
import time
import types
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
        self.instant_mw = 150_000
        self.instant_supported = True
        self.step_w: float | None = None  # set: the counter steps in real time, every step_s
        self.step_s = 0.1
        self.started = time.monotonic()
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
        monkeypatch.setattr(pynvml, "nvmlDeviceGetFieldValues", self.field_values)

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
        if self.step_w is not None:  # the counter advances in steps, as the driver's does
            steps = int((time.monotonic() - self.started) / self.step_s)
            return self.energy_mj + int(steps * self.step_w * self.step_s * 1e3)
        return self.energy_mj

    def field_values(self, handle: object, field_ids: list[int]) -> object:
        """Real ctypes field values: the call succeeds; each field carries its own return code."""
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field_id in zip(values, field_ids, strict=True):
            value.fieldId = field_id
            supported = field_id == pynvml.NVML_FI_DEV_POWER_INSTANT and self.instant_supported
            supported = supported and self.energy_error is None
            failure = self.energy_error if self.energy_error is not None else pynvml.NVML_ERROR_NOT_SUPPORTED
            value.nvmlReturn = pynvml.NVML_SUCCESS if supported else failure
            value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            value.value.uiVal = self.instant_mw if supported else 0
        return values

    def power(self, handle: object) -> int:
        if self.energy_error is not None:
            raise pynvml.NVMLError(self.energy_error)
        return self.power_mw


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    return FakeNvml(monkeypatch)


def test_energy_counter_window(nvml: FakeNvml) -> None:
    clock = FakeClock(10.0)
    meter = NvmlEnergyMeter(0, tick_timeout_s=0.01, clock=clock)
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


def test_window_edges_are_counter_steps(nvml: FakeNvml) -> None:
    nvml.step_w = 100.0  # 10 J every 100 ms
    meter = NvmlEnergyMeter(0)
    assert meter.min_window_s >= 5.0
    with meter.window() as window:
        time.sleep(0.45)  # 4 or 5 steps for a window that does not start at a step: 89 or 111 W
    assert window.power_w == pytest.approx(100.0, rel=0.03)
    assert window.energy_j in (pytest.approx(40.0), pytest.approx(50.0))
    meter.close()


def test_counter_reset_fails_the_window(nvml: FakeNvml) -> None:
    meter = NvmlEnergyMeter(0, tick_timeout_s=0.01)
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


def test_power_polling_reads_the_instantaneous_field(nvml: FakeNvml) -> None:
    clock = FakeClock()
    meter = NvmlPowerMeter(0, interval_s=3600.0, clock=clock)
    meter.begin()  # 150 W instantaneous (the 1 s average says 100 W)
    nvml.instant_mw = 250_000
    clock.t = 3.0
    assert meter.end().energy_j == pytest.approx((150 + 250) / 2 * 3)
    assert meter.name == "nvml-power"


def test_power_polling_falls_back_to_the_averaged_reading_and_says_so(nvml: FakeNvml) -> None:
    nvml.instant_supported = False
    clock = FakeClock()
    meter = NvmlPowerMeter(0, interval_s=3600.0, clock=clock)
    meter.begin()  # 100 W, averaged over the last second
    nvml.power_mw = 200_000
    clock.t = 3.0
    reading = meter.end()
    assert reading.energy_j == pytest.approx((100 + 200) / 2 * 3)
    assert reading.meter == meter.name == "nvml-power-avg" and meter.min_window_s >= 5.0


def test_the_old_unofficial_pynvml_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = types.ModuleType("pynvml")  # the old 'pynvml' package: no _nvmlGetFunctionPointer
    shadow.nvmlInit = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", shadow)
    reason = NvmlEnergyMeter(0).probe().reason
    assert "not NVIDIA's nvidia-ml-py" in reason and "pip uninstall pynvml" in reason


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
