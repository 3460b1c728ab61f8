"""profiling: what any torch model costs per clip on the device it runs on.

MACs and memory traffic of the ops that actually execute (per layer and per operator), latency
(median/p90 with device sync), and energy from real meters (NVML, Jetson INA3221 rails, jtop,
RAPL) or an explicitly labelled estimate; sweeps over model variants that resume after an
interruption; an environment report.

    from profiling import profile
    report = profile(model, clip, device="cpu")

Importing this package is cheap: names are loaded on first use, so ``import profiling`` pulls in
neither torch nor matplotlib and initialises no CUDA.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "profile": "profiling.profiler",
    "ProfileReport": "profiling.report",
    "count_macs": "profiling.macs",
    "per_clip_macs": "profiling.macs",
    "MacCount": "profiling.macs",
    "LayerCost": "profiling.macs",
    "OpCost": "profiling.macs",
    "analytic_layer_cost": "profiling.memory",
    "op_bytes": "profiling.memory",
    "measure_latency": "profiling.latency",
    "measure_interleaved": "profiling.latency",
    "LatencyStats": "profiling.latency",
    "measure_energy": "profiling.energy",
    "EnergyResult": "profiling.energy",
    "run_sweep": "profiling.sweep",
    "collect_env": "profiling.env",
    "collect_conditions": "profiling.conditions",
    "source_revision": "profiling.env",
    "retain_freed_memory": "profiling.host_memory",
    "load_rail_log": "profiling.rail_log",
    "RailLog": "profiling.rail_log",
    "join_rail_log": "profiling.rail_log",
    "EnergyMeter": "profiling.meters",
    "EnergyReading": "profiling.meters",
    "MeterError": "profiling.meters",
    "EstimatedEnergyModel": "profiling.meters",
    "IdleBaseline": "profiling.meters",
    "measure_idle_power": "profiling.meters",
    "JetsonRailMeter": "profiling.meters",
    "JtopMeter": "profiling.meters",
    "NvmlEnergyMeter": "profiling.meters",
    "NvmlPowerMeter": "profiling.meters",
    "RaplMeter": "profiling.meters",
    "MeterSelection": "profiling.meters",
    "select_meter": "profiling.meters",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'profiling' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
