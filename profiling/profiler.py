"""``profile(model, clip)``: MACs, bytes, latency and energy of one call, in one report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from profiling.energy import NOT_REQUESTED, measure_or_estimate, no_energy, resolve_meter
from profiling.inputs import to_device
from profiling.latency import measure_latency
from profiling.macs import count_macs
from profiling.meters.base import EnergyMeter
from profiling.meters.estimated import EstimatedEnergyModel
from profiling.meters.idle import IdleBaseline, measure_idle_power
from profiling.report import ProfileReport


def count_params(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def profile(
    model: nn.Module | Callable[..., Any],
    inputs: Any,
    *,
    device: str | torch.device = "cpu",
    warmup: int = 5,
    repeats: int = 20,
    meter: EnergyMeter | str | None = "auto",
    energy_model: EstimatedEnergyModel | None = None,
    min_window_s: float | None = None,
    idle: IdleBaseline | None = None,
    idle_s: float = 0.0,
    module: nn.Module | None = None,
) -> ProfileReport:
    """Profile ``model(inputs)`` on ``device`` (the model and inputs are moved there).

    Pass one clip (batch 1) for per-clip numbers. ``meter``: ``"auto"`` picks the best working
    meter for the device, ``None`` skips energy, or pass a meter. Without a working meter,
    ``energy_model`` gives an estimate labelled ``energy_source="estimated"``. The model's
    train/eval mode is left as it is. ``idle`` (a baseline measured with the same meter) or
    ``idle_s > 0`` (measure one now) adds dynamic energy. ``module`` names the layer tree when
    ``model`` is a function.
    """
    dev = torch.device(device)
    if isinstance(model, nn.Module):
        model.to(dev)
    module = module if module is not None else (model if isinstance(model, nn.Module) else None)
    inputs = to_device(inputs, dev)
    counts = count_macs(model, inputs, module=module)
    latency = measure_latency(model, inputs, warmup=warmup, repeats=repeats, device=dev)
    if meter is None and energy_model is None:
        energy = no_energy(NOT_REQUESTED)
    else:
        chosen, reason = resolve_meter(meter, dev) if meter is not None else (None, "no meter requested")
        owned = isinstance(meter, str)  # selected here, so closed here
        try:
            if idle is None and idle_s > 0 and chosen is not None:
                idle = measure_idle_power(chosen, duration_s=idle_s)
            energy = measure_or_estimate(
                model,
                inputs,
                meter=chosen,
                energy_model=energy_model,
                macs=counts.macs,
                bytes_moved=counts.bytes_read + counts.bytes_written,
                latency_s=latency.median_ms / 1e3,
                device=dev,
                min_window_s=min_window_s,
                idle=idle,
                unavailable_reason=reason,
            )
        finally:
            if chosen is not None and owned:
                chosen.close()
    return ProfileReport.build(
        model=type(module).__name__ if module is not None else getattr(model, "__name__", "function"),
        device=str(dev),
        params=count_params(module),
        counts=counts,
        latency=latency,
        energy=energy,
    )
