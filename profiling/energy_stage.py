"""Energy per clip of a few named models with the meter ``dance3d show-env`` selects (the quickstart's
energy stage), or one line saying why there is none.

Where a meter works (Jetson INA3221 rails, NVML, RAPL, jtop), each model is measured clip by clip
(batch 1) in one meter window, with the idle power measured first so the energy above idle is
reported too. Where none works, the section is one line: the meters' reasons (the ones ``show-env``
prints) and how to get one. No estimate is shown in place of a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from profiling.energy import measure_energy
from profiling.meters import EnergyMeter, MeterError, measure_idle_power, select_meter

MIN_WINDOW_S = 2.0  # per model: long against every meter's update step
IDLE_S = 2.0
HOW_TO_GET_A_METER = (
    "to measure energy, run on a Jetson (INA3221 rails), on an NVIDIA GPU with NVML (pip install "
    "nvidia-ml-py), or on an Intel/AMD CPU with RAPL readable (as root, or sudo chmod o+r "
    "/sys/class/powercap/intel-rapl:*/energy_uj); `dance3d show-env` lists every meter and why it does not work"
)


@dataclass
class EnergyStage:
    """The meter used on ``device`` (None, and why, where none works)."""

    device: str
    meter: EnergyMeter | None
    reason: str

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()


def open_energy_stage(device: str = "cpu") -> EnergyStage:
    """Probe the meters of ``device`` as ``show-env`` does and keep the first that works."""
    selection = select_meter(device)
    return EnergyStage(device=device, meter=selection.meter, reason=selection.reason)


def energy_rows(
    models: Mapping[str, Callable[[torch.Tensor], Any]],
    clip: torch.Tensor,
    stage: EnergyStage,
    *,
    window_s: float = MIN_WINDOW_S,
    idle_s: float = IDLE_S,
) -> list[dict[str, Any]]:
    """Measured joules per clip of each model on ``clip`` (batch 1); empty without a meter.

    Each model loops over the clip for >= ``window_s`` (and the meter's own minimum) in one window;
    the idle power is measured first for ``idle_s``.
    """
    if stage.meter is None:
        return []
    meter = stage.meter
    try:
        idle = measure_idle_power(meter, duration_s=idle_s)
    except MeterError:
        idle = None  # the model windows below report the meter's state in their status
    rows = []
    for name, model in models.items():
        with torch.no_grad():
            result = measure_energy(
                model, clip[None], meter=meter, min_window_s=max(window_s, meter.min_window_s), idle=idle
            )
        rows.append(
            {
                "model": name,
                "energy_per_clip_mj": result.energy_j * 1e3,
                "dynamic_energy_per_clip_mj": result.dynamic_energy_j * 1e3,
                "power_w": result.power_w,
                "idle_power_w": result.idle_power_w,
                "window_s": result.window_s,
                "clips_in_window": result.window_iterations,
                "energy_status": result.energy_status,
            }
        )
    return rows


def energy_section(stage: EnergyStage, rows: list[dict[str, Any]]) -> tuple[str, str, Any]:
    """(heading, text, table): a table of measurements, or one line saying why there is none (table None)."""
    import pandas as pd

    if stage.meter is None:
        line = f"Not measured: no energy meter works on this machine ({stage.reason}); {HOW_TO_GET_A_METER}."
        return "Energy", line, None
    text = (
        f"Measured with `{stage.meter.name}` on {stage.device} (what it covers: see docs/profiling.md): one clip "
        f"at a time, looped for >= {MIN_WINDOW_S:g} s in one meter window, energy divided by the clips. Idle power "
        f"was measured first ({IDLE_S:g} s) with the same meter; `dynamic` is the energy above idle. Energy per "
        "clip is also a study objective wherever a meter works."
    )
    return f"Energy (measured: {stage.meter.name})", text, pd.DataFrame(rows).set_index("model")
