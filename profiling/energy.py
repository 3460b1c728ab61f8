"""Energy per call: loop the work inside one meter window long enough for the meter, divide.

Every result says where its number came from: ``energy_source`` is ``"measured"`` (a meter),
``"estimated"`` (an :class:`EstimatedEnergyModel`) or ``"none"``; ``energy_status`` is ``"ok"``,
``"unavailable: <why>"``, ``"failed: <why>"`` or ``"not requested"``. Energy is NaN unless ok.
The window's wall-clock edges (epoch seconds) are kept so an external rail log can be joined.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from profiling.inputs import call_with, device_of
from profiling.latency import synchronize
from profiling.meters.base import EnergyMeter, MeterError
from profiling.meters.estimated import EstimatedEnergyModel
from profiling.meters.idle import IdleBaseline
from profiling.meters.select import select_meter
from profiling.rail_log import MIN_LOG_SAMPLES

MEASURED, ESTIMATED, NONE = "measured", "estimated", "none"
OK, NOT_REQUESTED = "ok", "not requested"
NAN = math.nan
RAIL_LOG_INTERVAL_S = 0.05  # rail_logger.py's default sampling interval
MIN_TIMED_WINDOW_S = 1.0
TIMED_WINDOW_SAMPLES = 20  # default timed window: this many logger samples (and >= MIN_TIMED_WINDOW_S)


def timed_window_s(rail_log_interval_s: float, min_window_s: float | None = None) -> float:
    """Length of a meterless window that an external rail log will integrate.

    Default: ``max(MIN_TIMED_WINDOW_S, TIMED_WINDOW_SAMPLES * interval)``. A requested window that
    would hold fewer than ``MIN_LOG_SAMPLES`` samples is refused: between two samples the log can
    only interpolate, so such a window measures the interpolation, not the work.
    """
    if rail_log_interval_s <= 0:
        raise ValueError(f"rail_log_interval_s must be positive, got {rail_log_interval_s}")
    if min_window_s is None:
        return max(MIN_TIMED_WINDOW_S, TIMED_WINDOW_SAMPLES * rail_log_interval_s)
    if min_window_s < MIN_LOG_SAMPLES * rail_log_interval_s:
        raise ValueError(
            f"a {min_window_s} s window holds fewer than {MIN_LOG_SAMPLES} rail-log samples at "
            f"{rail_log_interval_s} s; use min_window_s >= {MIN_LOG_SAMPLES * rail_log_interval_s:g}"
        )
    return min_window_s


@dataclass(frozen=True)
class EnergyResult:
    """Energy of one call (one batch); window fields describe the measured loop."""

    energy_j: float
    energy_source: str
    energy_status: str
    meter: str
    power_w: float = NAN
    idle_power_w: float = NAN
    dynamic_energy_j: float = NAN
    window_energy_j: float = NAN
    window_s: float = NAN
    window_iterations: int = 0
    window_start_epoch_s: float = NAN
    window_end_epoch_s: float = NAN


def no_energy(status: str, *, meter: str = "none") -> EnergyResult:
    """A result that carries only why there is no energy number."""
    return EnergyResult(energy_j=NAN, energy_source=NONE, energy_status=status, meter=meter)


def resolve_meter(meter: EnergyMeter | str, device: str | torch.device) -> tuple[EnergyMeter | None, str]:
    """``"auto"`` -> the best working meter for ``device`` (or None and why); a meter -> itself."""
    if isinstance(meter, EnergyMeter):
        return meter, ""
    if meter != "auto":
        raise ValueError(f"meter must be an EnergyMeter, 'auto' or None, got {meter!r}")
    try:
        selection = select_meter(str(torch.device(device)))
    except ValueError as exc:
        return None, str(exc)
    return selection.meter, selection.reason


def measure_energy(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    meter: EnergyMeter | None,
    device: str | torch.device | None = None,
    min_window_s: float | None = None,
    min_iterations: int = 3,
    idle: IdleBaseline | None = None,
    unavailable_reason: str = "no meter",
    rail_log_interval_s: float = RAIL_LOG_INTERVAL_S,
) -> EnergyResult:
    """Call ``fn(inputs)`` repeatedly for >= ``min_window_s`` (default: the meter's) and divide.

    With ``meter=None`` the window still runs and its epoch edges are recorded (for a rail log
    recorded by another process every ``rail_log_interval_s``; the window defaults to
    :func:`timed_window_s`), and the status is ``"unavailable: <unavailable_reason>"``.
    A meter that fails gives ``"failed: <why>"``; an exception from ``fn`` propagates.
    """
    if min_iterations < 1:
        raise ValueError(f"min_iterations must be >= 1, got {min_iterations}")
    if idle is not None and meter is not None and idle.meter != meter.name:
        raise ValueError(
            f"the idle baseline was measured with {idle.meter!r} but energy is measured with {meter.name!r}"
        )
    dev = torch.device(device) if device is not None else device_of(inputs)
    window_s = timed_window_s(rail_log_interval_s, min_window_s) if meter is None else NAN
    meter_name = meter.name if meter is not None else "none"
    with torch.inference_mode():
        synchronize(dev)
        start_epoch_s = time.time()
        if meter is not None:
            try:
                meter.begin()
            except MeterError as exc:
                return no_energy(f"failed: {exc}", meter=meter_name)
            # read after begin(): a meter may learn its update step only once connected (jtop)
            window_s = min_window_s if min_window_s is not None else meter.min_window_s
        t0, iterations = time.perf_counter(), 0
        try:
            while iterations < min_iterations or time.perf_counter() - t0 < window_s:
                call_with(fn, inputs)
                iterations += 1
            synchronize(dev)
        except BaseException:
            if meter is not None:
                meter.abort()
            raise
        elapsed_s, end_epoch_s = time.perf_counter() - t0, time.time()
    window = {
        "window_iterations": iterations,
        "window_start_epoch_s": start_epoch_s,
        "window_end_epoch_s": end_epoch_s,
        "window_s": elapsed_s,
    }
    if meter is None:
        return EnergyResult(NAN, NONE, f"unavailable: {unavailable_reason}", meter_name, **window)
    try:
        reading = meter.end()
    except MeterError as exc:
        return EnergyResult(NAN, NONE, f"failed: {exc}", meter_name, **window)
    window["window_s"] = reading.duration_s
    idle_w = idle.power_w if idle is not None else NAN
    dynamic_j = idle.dynamic_energy_j(reading.energy_j, reading.duration_s) if idle is not None else NAN
    return EnergyResult(
        energy_j=reading.energy_j / iterations,
        energy_source=MEASURED,
        energy_status=OK,
        meter=meter_name,
        power_w=reading.power_w,
        idle_power_w=idle_w,
        dynamic_energy_j=dynamic_j / iterations,
        window_energy_j=reading.energy_j,
        **window,
    )


def estimate_energy(model: EstimatedEnergyModel, *, macs: int, bytes_moved: int, latency_s: float) -> EnergyResult:
    """Estimated energy of one call, labelled ``energy_source="estimated"``.

    The model's static term plays the idle baseline: dynamic energy is what MACs and bytes add.
    """
    energy_j = model.estimate_j(macs=macs, bytes_moved=bytes_moved, latency_s=latency_s)
    return EnergyResult(
        energy_j=energy_j,
        energy_source=ESTIMATED,
        energy_status=OK,
        meter=ESTIMATED,
        power_w=energy_j / latency_s if latency_s > 0 else NAN,
        idle_power_w=model.static_power_w,
        dynamic_energy_j=energy_j - model.static_power_w * latency_s,
    )


def measure_or_estimate(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    meter: EnergyMeter | None,
    energy_model: EstimatedEnergyModel | None,
    macs: int,
    bytes_moved: int,
    latency_s: float,
    device: str | torch.device | None = None,
    min_window_s: float | None = None,
    min_iterations: int = 3,
    idle: IdleBaseline | None = None,
    unavailable_reason: str = "no meter",
    timed_window: bool = False,
    rail_log_interval_s: float = RAIL_LOG_INTERVAL_S,
) -> EnergyResult:
    """Measure with ``meter`` if there is one, else estimate with ``energy_model`` if given.

    A meter that fails stays ``failed`` (it is never silently replaced by an estimate). With
    neither, ``timed_window=True`` still runs a timed window so a separately recorded rail log
    can be integrated over its epoch edges later.
    """
    if meter is not None or (energy_model is None and timed_window):
        return measure_energy(
            fn,
            inputs,
            meter=meter,
            device=device,
            min_window_s=min_window_s,
            min_iterations=min_iterations,
            idle=idle,
            unavailable_reason=unavailable_reason,
            rail_log_interval_s=rail_log_interval_s,
        )
    if energy_model is not None:
        return estimate_energy(energy_model, macs=macs, bytes_moved=bytes_moved, latency_s=latency_s)
    return no_energy(f"unavailable: {unavailable_reason}")
