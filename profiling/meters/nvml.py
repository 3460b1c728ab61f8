"""NVIDIA GPU energy through NVML (``pynvml`` from the ``nvidia-ml-py`` package).

``NvmlEnergyMeter`` reads the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ
since driver load, Volta and newer). It advances in steps of up to ~100 ms, so a 1 s window is
+-10%: both edges are taken at counter steps (the first change seen after ``begin``/``end``) and
windows last >= 5 s. ``NvmlPowerMeter`` polls and integrates, for GPUs without the counter: the
instantaneous power field (``NVML_FI_DEV_POWER_INSTANT`` through ``nvmlDeviceGetFieldValues``),
or, where the driver does not support that field, ``nvmlDeviceGetPowerUsage``, which on recent
GPUs is a 1 s average (the meter is then named ``nvml-power-avg``). Availability is decided by
running the real query: on Jetson Orin NVML initialises but every power query raises NotSupported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from profiling.meters.base import EnergyMeter, MeterError, _Measured
from profiling.meters.polling import PollingMeter

_EXPLANATIONS = {
    "NVMLError_NotSupported": "not supported on this GPU (the energy counter needs Volta or newer; "
    "Jetson integrated GPUs answer NotSupported to every power query)",
    "NVMLError_NoPermission": "the driver denies this query to the current user (run as root, or ask "
    "the administrator to allow it)",
    "NVMLError_LibraryNotFound": "the NVML library (libnvidia-ml.so) was not found: no NVIDIA driver",
    "NVMLError_DriverNotLoaded": "the NVIDIA driver is not loaded",
    "NVMLError_GpuIsLost": "the GPU has fallen off the bus",
    "NVMLError_InvalidArgument": "invalid device (check the device index/UUID)",
    "NVMLError_NotFound": "no such device",
}


NVML_FI_DEV_POWER_INSTANT = 186  # nvml.h; pynvml names it in nvidia-ml-py >= 12.535


def import_pynvml() -> ModuleType:
    """NVIDIA's ``pynvml`` (nvidia-ml-py); :class:`MeterError` saying how to fix it if missing or shadowed."""
    try:
        import pynvml
    except ImportError as exc:
        raise MeterError("pynvml is not installed (pip install nvidia-ml-py)") from exc
    if not hasattr(pynvml, "_nvmlGetFunctionPointer"):
        raise MeterError(
            f"the pynvml module imported from {getattr(pynvml, '__file__', '?')} is not NVIDIA's nvidia-ml-py "
            "(the old unofficial 'pynvml' package shadows it): pip uninstall pynvml && pip install nvidia-ml-py"
        )
    return pynvml


def explain_nvml_error(what: str, exc: Exception) -> MeterError:
    """A MeterError whose message says which query failed and what the NVML error means."""
    reason = _EXPLANATIONS.get(type(exc).__name__, str(exc))
    return MeterError(f"NVML {what} failed: {reason} [{type(exc).__name__}]")


class _NvmlDevice:
    """One NVML device handle, initialising NVML once and shutting it down on close."""

    def __init__(self, index: int, uuid: str | None) -> None:
        self.index, self.uuid = index, uuid
        self.nvml: ModuleType | None = None
        self.handle: Any = None

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.nvml is not None
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            raise explain_nvml_error(what, exc) from exc

    def open(self) -> ModuleType:
        if self.nvml is None:
            nvml = import_pynvml()
            self.nvml = nvml
            try:
                self.call("init", nvml.nvmlInit)
            except MeterError:
                self.nvml = None
                raise
            try:
                if self.uuid is not None:
                    self.handle = self.call("device lookup", nvml.nvmlDeviceGetHandleByUUID, self.uuid)
                else:
                    self.handle = self.call("device lookup", nvml.nvmlDeviceGetHandleByIndex, self.index)
            except MeterError:
                self.close()
                raise
        return self.nvml

    def close(self) -> None:
        if self.nvml is not None:
            self.nvml.nvmlShutdown()
        self.nvml, self.handle = None, None


class NvmlEnergyMeter(EnergyMeter):
    """GPU energy from NVML's total-energy counter (mJ), between two counter steps."""

    name = "nvml-energy"
    min_window_s = 5.0

    def __init__(
        self,
        index: int = 0,
        *,
        uuid: str | None = None,
        tick_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock=clock)
        self._device = _NvmlDevice(index, uuid)
        self.tick_timeout_s = tick_timeout_s
        self._start: tuple[float, int] | None = None

    def _read_mj(self) -> int:
        nvml = self._device.open()
        return int(
            self._device.call(
                "nvmlDeviceGetTotalEnergyConsumption",
                nvml.nvmlDeviceGetTotalEnergyConsumption,
                self._device.handle,
            )
        )

    def _probe(self) -> None:
        self._read_mj()

    def _at_next_step(self) -> tuple[float, int]:
        """(time, counter) just after the counter's next step; now if it does not step within the timeout."""
        first_mj = self._read_mj()
        deadline = time.monotonic() + self.tick_timeout_s
        while time.monotonic() < deadline:
            value_mj = self._read_mj()
            if value_mj != first_mj:
                return self._clock(), value_mj
            time.sleep(0.001)
        return self._clock(), first_mj

    def _begin(self) -> None:
        self._start = self._at_next_step()

    def _end(self) -> _Measured:
        assert self._start is not None
        (t0, before_mj), self._start = self._start, None
        t1, after_mj = self._at_next_step()
        if after_mj < before_mj:
            raise MeterError(
                f"NVML energy counter went backwards ({before_mj} -> {after_mj} mJ): the driver was "
                "reloaded or the GPU reset during the window"
            )
        energy_j = (after_mj - before_mj) / 1e3
        return _Measured(energy_j, t1 - t0, {"gpu": energy_j})

    def close(self) -> None:
        self._device.close()


class NvmlPowerMeter(PollingMeter):
    """GPU energy by polling NVML's instantaneous power (mW) and integrating; for GPUs without the counter.

    Falls back to ``nvmlDeviceGetPowerUsage`` where the instantaneous field is not supported, and
    is then named ``nvml-power-avg``: that reading is a 1 s average on recent GPUs, so the
    integral lags the workload by up to a second (windows >= 5 s).
    """

    name = "nvml-power"
    min_window_s = 2.0

    def __init__(
        self,
        index: int = 0,
        *,
        uuid: str | None = None,
        interval_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self._device = _NvmlDevice(index, uuid)
        self._instant: bool | None = None  # decided by the first query

    def _instant_mw(self, nvml: ModuleType) -> int | None:
        """The instantaneous power field, or None where this GPU/driver does not support it."""
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", NVML_FI_DEV_POWER_INSTANT)
        try:
            value = nvml.nvmlDeviceGetFieldValues(self._device.handle, [field])[0]
        except nvml.NVMLError:
            return None
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            return None
        return int(value.value.uiVal)

    def _sample(self) -> tuple[float, dict[str, float]]:
        nvml = self._device.open()
        if self._instant is not False:
            power_mw = self._instant_mw(nvml)
            if power_mw is not None:
                self._instant = True
                return power_mw / 1e3, {"gpu": power_mw / 1e3}
            if self._instant:
                raise MeterError("NVML's instantaneous power field stopped answering during the window")
        power_mw = self._device.call("nvmlDeviceGetPowerUsage", nvml.nvmlDeviceGetPowerUsage, self._device.handle)
        if self._instant is None:  # the averaged reading works where the instantaneous field does not
            self._instant = False
            self.name, self.min_window_s = "nvml-power-avg", 5.0
        return power_mw / 1e3, {"gpu": power_mw / 1e3}

    def close(self) -> None:
        self._device.close()
