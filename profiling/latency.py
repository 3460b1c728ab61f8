"""Latency: warm-up, device sync at both edges, many repeats, median and p90; several calls round-robin.

CUDA: one pair of CUDA events per repeat, read after a final synchronize. CPU (and other
devices): ``time.perf_counter`` around each call, with a device sync inside the timed span.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from profiling.inputs import call_with, device_of


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xpu":
        torch.xpu.synchronize(device)


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency over ``repeats`` timed calls after ``warmup`` untimed ones."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int
    timer: str  # "cuda-events" or "perf_counter"
    device: str
    samples_ms: tuple[float, ...]


def _summarise(samples_ms: list[float], *, warmup: int, timer: str, device: torch.device) -> LatencyStats:
    values = np.asarray(samples_ms)
    return LatencyStats(
        median_ms=float(np.median(values)),
        p90_ms=float(np.percentile(values, 90)),
        mean_ms=float(values.mean()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        repeats=len(samples_ms),
        warmup=warmup,
        timer=timer,
        device=str(device),
        samples_ms=tuple(float(v) for v in samples_ms),
    )


def _check_counts(*, warmup: int, repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")


def measure_latency(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    warmup: int = 10,
    repeats: int = 50,
    device: str | torch.device | None = None,
) -> LatencyStats:
    """Time ``fn(inputs)`` under inference mode; ``device`` defaults to the inputs' device."""
    _check_counts(warmup=warmup, repeats=repeats)
    dev = torch.device(device) if device is not None else device_of(inputs)
    with torch.inference_mode():
        for _ in range(warmup):
            call_with(fn, inputs)
        synchronize(dev)
        if dev.type == "cuda":
            pairs = [
                (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)
            ]
            with torch.cuda.device(dev):
                for start, end in pairs:
                    start.record()
                    call_with(fn, inputs)
                    end.record()
            synchronize(dev)
            return _summarise([s.elapsed_time(e) for s, e in pairs], warmup=warmup, timer="cuda-events", device=dev)
        samples_ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call_with(fn, inputs)
            synchronize(dev)
            samples_ms.append((time.perf_counter() - t0) * 1e3)
    return _summarise(samples_ms, warmup=warmup, timer="perf_counter", device=dev)


def measure_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    repeats: int = 20,
    device: str | torch.device = "cpu",
) -> dict[str, LatencyStats]:
    """Time several zero-argument calls round-robin, so a slow spell of the machine hits all of them alike.

    Each round calls every entry once, in order; ``warmup`` untimed rounds come first. Every call is
    timed with ``time.perf_counter``, ``device`` synchronised at both edges.
    """
    _check_counts(warmup=warmup, repeats=repeats)
    dev = torch.device(device)
    samples_ms: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for round_ in range(warmup + repeats):
            for name, call in calls.items():
                synchronize(dev)
                t0 = time.perf_counter()
                call()
                synchronize(dev)
                if round_ >= warmup:
                    samples_ms[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: _summarise(values, warmup=warmup, timer="perf_counter", device=dev) for name, values in samples_ms.items()
    }
