"""Joules per sample of a re-timing's models, at batch 1 and at the throughput batch, with one energy meter.

The meter is the one ``dance3d show-env`` selects for the device (NVML on an NVIDIA GPU, the INA3221
rails or jtop on a Jetson, RAPL on an Intel/AMD CPU), or one passed in. The idle power is measured
first; then each model runs, in its own meter window of at least ``window_s``, the batch-1 samples
one after another (energy divided by the samples) and then the batch as one call (divided by its
size). Where no meter works the result says why and holds no number: no estimate stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from dance3d.copruning.benchmark import best_dense
from profiling.energy import measure_energy
from profiling.meters import EnergyMeter, MeterError, measure_idle_power

NOT_REQUESTED = {"meter": "none", "status": "not requested"}


def unavailable(reason: str) -> dict[str, Any]:
    """The energy record of a re-timing where no meter works, and why."""
    return {"meter": "none", "status": f"unavailable: {reason}"}


def energy_per_sample(
    models: Mapping[str, nn.Module],
    samples: list[torch.Tensor],
    batch: torch.Tensor,
    meter: EnergyMeter,
    *,
    dense_names: tuple[str, ...],
    window_s: float = 2.0,
) -> dict[str, Any]:
    """Millijoules per sample of each model at batch 1 (``samples``, each a batch of one) and at ``batch``; and
    each co-pruned model's saving, the less costly of the ``dense_names`` models' energy over its own."""
    try:
        idle = measure_idle_power(meter, duration_s=window_s)
    except MeterError as error:
        return {"meter": meter.name, "status": f"failed: {error}"}
    window = max(window_s, meter.min_window_s)
    cases = {"b1": (samples, len(samples)), "batch": (batch, int(batch.shape[0]))}
    energy_mj: dict[str, dict[str, float]] = {case: {} for case in cases}
    dynamic_mj: dict[str, dict[str, float]] = {case: {} for case in cases}
    status: dict[str, dict[str, str]] = {case: {} for case in cases}
    calls: dict[str, dict[str, int]] = {case: {} for case in cases}
    for name, model in models.items():
        for case, (inputs, count) in cases.items():
            run = (lambda *xs, m=model: [m(x) for x in xs]) if case == "b1" else model
            result = measure_energy(run, inputs, meter=meter, device=batch.device, min_window_s=window, idle=idle)
            energy_mj[case][name] = result.energy_j * 1e3 / count
            dynamic_mj[case][name] = result.dynamic_energy_j * 1e3 / count
            status[case][name] = result.energy_status
            calls[case][name] = result.window_iterations
    saving = {
        case: {name: best_dense(values, names=dense_names) / value for name, value in values.items()
               if name not in dense_names}
        for case, values in energy_mj.items()
    }  # fmt: skip
    return {
        "meter": meter.name,
        "status": "ok" if all(s == "ok" for per in status.values() for s in per.values()) else "partly failed",
        "idle_power_w": idle.power_w,
        "window_s": window,
        "energy_per_sample_mj": energy_mj,
        "dynamic_energy_per_sample_mj": dynamic_mj,
        "saving": saving,
        "status_per_model": status,
        "calls_in_window": calls,  # a call: every batch-1 sample once, or the batch once
    }
