"""Pick the best working energy meter for a device, or say why none works."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from profiling.meters.base import EnergyMeter
from profiling.meters.jetson import JetsonRailMeter
from profiling.meters.jtop_meter import JtopMeter
from profiling.meters.nvml import NvmlEnergyMeter, NvmlPowerMeter
from profiling.meters.rapl import RaplMeter


@dataclass
class MeterSelection:
    """The chosen meter (None if none works) and every candidate's failure reason."""

    meter: EnergyMeter | None
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.meter is not None

    @property
    def reason(self) -> str:
        """One line: why no meter was chosen (empty when one was)."""
        if self.meter is not None:
            return ""
        return "; ".join(f"{name}: {why}" for name, why in self.failures.items()) or "no candidate meters"


def _cuda_uuid(index: int) -> str | None:
    """NVML UUID of torch's CUDA device ``index`` (respects CUDA_VISIBLE_DEVICES), if torch knows it."""
    import torch

    if not torch.cuda.is_available():
        return None
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else None


def candidate_meters(device: str = "cpu", *, root: str | Path = "/") -> list[EnergyMeter]:
    """Meters that could measure ``device``, best first.

    CUDA: NVML counter, NVML power polling, then Jetson board rails (integrated GPUs).
    CPU: RAPL packages, then Jetson board rails. jtop comes last everywhere (a service dependency).
    """
    kind, _, index_text = device.partition(":")
    if kind == "cuda":
        index = int(index_text or 0)
        uuid = _cuda_uuid(index)
        return [
            NvmlEnergyMeter(index, uuid=uuid),
            NvmlPowerMeter(index, uuid=uuid),
            JetsonRailMeter(root=root),
            JtopMeter(),
        ]
    if kind == "cpu":
        return [RaplMeter(root=root), JetsonRailMeter(root=root), JtopMeter()]
    raise ValueError(f"no energy meters known for device {device!r} (use 'cpu' or 'cuda[:N]')")


def select_meter(device: str = "cpu", *, root: str | Path = "/") -> MeterSelection:
    """Probe candidates in order (the real query, not just library init); return the first that works."""
    failures: dict[str, str] = {}
    for meter in candidate_meters(device, root=root):
        availability = meter.probe()
        if availability.ok:
            return MeterSelection(meter, failures)
        meter.close()
        failures[meter.name] = availability.reason
    return MeterSelection(None, failures)
