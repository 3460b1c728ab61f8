"""NVIDIA GPU energy through NVML (``pynvml`` from the ``nvidia-ml-py`` package).

``NvmlEnergyMeter`` reads the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ
since driver load, Volta and newer). It advances in steps of roughly 10-100 ms, so windows should
be >= 1 s. ``NvmlPowerMeter`` polls ``nvmlDeviceGetPowerUsage`` (mW) and integrates, for GPUs
without the counter. Availability is decided by running the real query: on Jetson Orin NVML
initialises but every power query raises NotSupported.
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


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:
        raise MeterError("pynvml is not installed (pip install nvidia-ml-py)") from exc
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
            nvml = _import_pynvml()
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
    """GPU energy from NVML's total-energy counter (mJ)."""

    name = "nvml-energy"
    min_window_s = 1.0

    def __init__(self, index: int = 0, *, uuid: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self._device = _NvmlDevice(index, uuid)
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

    def _begin(self) -> None:
        self._start = (self._clock(), self._read_mj())

    def _end(self) -> _Measured:
        assert self._start is not None
        (t0, before_mj), self._start = self._start, None
        after_mj, t1 = self._read_mj(), self._clock()
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
    """GPU energy by polling NVML's power reading (mW) and integrating; for pre-Volta GPUs."""

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

    def _sample(self) -> tuple[float, dict[str, float]]:
        nvml = self._device.open()
        power_mw = self._device.call("nvmlDeviceGetPowerUsage", nvml.nvmlDeviceGetPowerUsage, self._device.handle)
        return power_mw / 1e3, {"gpu": power_mw / 1e3}

    def close(self) -> None:
        self._device.close()
