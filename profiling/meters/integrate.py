"""Energy from power samples: trapezoid integration over a time window."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence


def trapezoid_j(times_s: Sequence[float], powers_w: Sequence[float]) -> float:
    """Energy in joules of the piecewise-linear power curve through the samples."""
    if len(times_s) != len(powers_w):
        raise ValueError(f"{len(times_s)} timestamps but {len(powers_w)} power samples")
    energy_j = 0.0
    for i in range(1, len(times_s)):
        dt = times_s[i] - times_s[i - 1]
        if dt < 0:
            raise ValueError(f"timestamps go backwards at sample {i}: {times_s[i - 1]} -> {times_s[i]}")
        energy_j += 0.5 * (powers_w[i] + powers_w[i - 1]) * dt
    return energy_j


def _power_at(times_s: Sequence[float], powers_w: Sequence[float], t: float) -> float:
    """Linearly interpolated power at time ``t`` (inside the sampled span)."""
    i = bisect_right(times_s, t)
    if i == 0:
        return powers_w[0]
    if i == len(times_s):
        return powers_w[-1]
    t0, t1 = times_s[i - 1], times_s[i]
    if t1 == t0:
        return powers_w[i]
    return powers_w[i - 1] + (powers_w[i] - powers_w[i - 1]) * (t - t0) / (t1 - t0)


def window_energy_j(times_s: Sequence[float], powers_w: Sequence[float], start_s: float, end_s: float) -> float:
    """Energy between ``start_s`` and ``end_s``, interpolating the power at both edges.

    The window must lie inside the sampled span, since energy outside it is unknown.
    """
    if end_s < start_s:
        raise ValueError(f"window ends ({end_s}) before it starts ({start_s})")
    if not times_s or start_s < times_s[0] or end_s > times_s[-1]:
        span = f"[{times_s[0]}, {times_s[-1]}]" if times_s else "nothing"
        raise ValueError(f"window [{start_s}, {end_s}] is not covered by the samples, which span {span}")
    lo = bisect_right(times_s, start_s)
    hi = bisect_left(times_s, end_s)
    times = [start_s, *times_s[lo:hi], end_s]
    powers = [
        _power_at(times_s, powers_w, start_s),
        *powers_w[lo:hi],
        _power_at(times_s, powers_w, end_s),
    ]
    return trapezoid_j(times, powers)
