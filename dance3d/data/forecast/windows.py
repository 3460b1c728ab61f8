"""Sliding windows over field series: ``T_in`` past frames -> ``T_out`` future frames, split in time.

Splits are contiguous in time and no window crosses a split boundary or a gap in the series' time
axis. Values are normalised per channel with the mean/std of the train part. See
``docs/forecast-data.md`` for the ``calm_fraction`` rule and the NaN policies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from dance3d.data.forecast.series import FieldDataError, FieldSeries

SPLITS = ("train", "val", "test")
NAN_POLICIES = ("refuse", "fill")
# A pixel-frame of these variables has "no signal" below this level (physical units of the reader):
# SEVIR VIL below the lowest CSI threshold, precipitation under 0.1 mm/h (or 0.1 mm per step),
# traffic flow of less than one vehicle.
NO_SIGNAL_LEVELS: dict[str, float] = {
    "vil": 16.0,
    "prate": 0.1 / 3600.0,
    "tp": 1e-4,
    "inflow": 1.0,
    "outflow": 1.0,
}
# Other (smooth) variables: a pixel-frame is calm when it changes by less than this share of the
# variable's train std since the previous frame.
CALM_CHANGE_FRACTION = 0.05
# A time step longer than this multiple of the median step (or not positive) is a gap.
GAP_FACTOR = 1.5


@dataclass(frozen=True)
class _Run:
    """A contiguous, gap-free stretch ``[start, stop)`` of series ``series_index``."""

    series_index: int
    start: int
    stop: int


class WindowedFieldDataset(Dataset):
    """Samples ``{"inputs", "targets", "meta"}`` cut from one series, or from several (e.g. SEVIR events).

    With one series the time axis is split at ``split_fractions``; with a sequence of series (in
    time order) whole series go to train, val and test in those shares. ``nan_policy="refuse"``
    raises on any NaN; ``"fill"`` replaces NaN with the train mean of its variable (0 once
    normalised).
    """

    def __init__(
        self,
        series: FieldSeries | Sequence[FieldSeries],
        *,
        t_in: int,
        t_out: int,
        split: str,
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        stride: int = 1,
        nan_policy: str = "refuse",
        no_signal_levels: Mapping[str, float] | None = None,
        calm_change_fraction: float = CALM_CHANGE_FRACTION,
    ) -> None:
        self.series = [series] if isinstance(series, FieldSeries) else list(series)
        if not self.series:
            raise FieldDataError("no field series given")
        first = self.series[0]
        self.source = first.source if len(self.series) == 1 else f"{first.source} (+{len(self.series) - 1} more)"
        _check_arguments(self.source, t_in, t_out, split, split_fractions, stride, nan_policy)
        _check_compatible(self.series)
        if nan_policy == "refuse":
            _refuse_nans(self.series)
        self.t_in, self.t_out, self.split, self.stride = t_in, t_out, split, stride
        self.nan_policy = nan_policy
        self.variables = first.variables
        self.units = first.units
        self.lat, self.lon = first.lat, first.lon
        split_runs = _split_runs(self.series, split_fractions)
        self.mean, self.std = _train_stats(self.series, split_runs["train"], self.source)
        self.windows = _window_starts(split_runs[split], t_in + t_out, stride)
        if not self.windows:
            longest = max((run.stop - run.start for run in split_runs[split]), default=0)
            raise FieldDataError(
                f"{self.source}: too few time steps for t_in + t_out = {t_in + t_out} in the {split} split "
                f"(its longest gap-free stretch has {longest} steps; the series has "
                f"{sum(s.num_steps for s in self.series)}); use a shorter window or other split_fractions"
            )
        levels = {**NO_SIGNAL_LEVELS, **(no_signal_levels or {})}
        self._no_signal = [levels.get(name) for name in self.variables]
        self._calm_change = calm_change_fraction * self.std

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.windows):
            raise IndexError(f"window {index} out of range for {len(self.windows)} windows")
        series_index, start = self.windows[index]
        window = self.series[series_index].values[start : start + self.t_in + self.t_out]
        if self.nan_policy == "fill":
            window = np.where(np.isnan(window), self.mean[None, :, None, None], window)
        normalised = (window - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        tensor = torch.from_numpy(np.ascontiguousarray(normalised, dtype=np.float32))
        return {
            "inputs": tensor[: self.t_in],
            "targets": tensor[self.t_in :],
            "meta": {
                "index": index,
                "calm_fraction": self.calm_fraction(window),
                "series_index": series_index,
                "start": start,
            },
        }

    def calm_fraction(self, window: np.ndarray) -> float:
        """Share of the window's pixel-frames with no signal (or, for smooth variables, no change)."""
        shares = []
        for channel, level in enumerate(self._no_signal):
            values = window[:, channel]
            if level is not None:
                shares.append(float(np.mean(values < level)))
            else:
                change = np.abs(np.diff(values, axis=0))
                shares.append(float(np.mean(change < self._calm_change[channel])))
        return float(np.mean(shares))


def _check_arguments(
    source: str, t_in: int, t_out: int, split: str, fractions: Sequence[float], stride: int, nan_policy: str
) -> None:
    if t_in < 1 or t_out < 1:
        raise FieldDataError(f"{source}: t_in and t_out must be >= 1, got t_in={t_in}, t_out={t_out}")
    if split not in SPLITS:
        raise FieldDataError(f"{source}: unknown split {split!r}; choose one of {SPLITS}")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise FieldDataError(f"{source}: split_fractions must be 3 shares >= 0 summing to 1, got {tuple(fractions)}")
    if stride < 1:
        raise FieldDataError(f"{source}: stride must be >= 1, got {stride}")
    if nan_policy not in NAN_POLICIES:
        raise FieldDataError(f"{source}: unknown nan_policy {nan_policy!r}; choose one of {NAN_POLICIES}")


def _check_compatible(series: list[FieldSeries]) -> None:
    first = series[0]
    for other in series[1:]:
        if other.variables != first.variables or other.values.shape[1:] != first.values.shape[1:]:
            raise FieldDataError(
                f"{other.source}: variables {other.variables} on {other.values.shape[2:]} do not match "
                f"{first.source}'s {first.variables} on {first.values.shape[2:]}"
            )


def _refuse_nans(series: list[FieldSeries]) -> None:
    for item in series:
        counts = item.nan_counts()
        if counts:
            total = sum(counts.values())
            raise FieldDataError(
                f"{item.source}: {total} missing (NaN or fill) values {counts}; clean the file, or pass "
                "nan_policy='fill' to replace them with the train mean of their variable"
            )


def _gap_free_runs(item: FieldSeries, series_index: int, start: int, stop: int) -> list[_Run]:
    """``[start, stop)`` cut at the time axis' gaps (steps not in (0, GAP_FACTOR x median step])."""
    if item.times is None or stop - start < 2:
        return [_Run(series_index, start, stop)] if stop > start else []
    steps = np.diff(item.times).astype("timedelta64[s]").astype(np.int64)
    positive = steps[steps > 0]
    median = np.median(positive) if positive.size else 0
    breaks = [i + 1 for i in range(start, stop - 1) if not 0 < steps[i] <= GAP_FACTOR * median]
    edges = [start, *breaks, stop]
    return [_Run(series_index, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def split_bounds(count: int, fractions: Sequence[float]) -> np.ndarray:
    """Where train, val and test start and end among ``count`` steps (or series): 4 ints, floors of the shares."""
    bounds = np.floor(np.cumsum([0.0, *fractions]) * count + 1e-9).astype(int)
    bounds[-1] = count
    return bounds


def _split_runs(series: list[FieldSeries], fractions: Sequence[float]) -> dict[str, list[_Run]]:
    """Gap-free runs of each split: time steps of one series, or whole series of several."""
    count = series[0].num_steps if len(series) == 1 else len(series)
    bounds = split_bounds(count, fractions)
    runs: dict[str, list[_Run]] = {}
    for name, low, high in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
        if len(series) == 1:
            runs[name] = _gap_free_runs(series[0], 0, int(low), int(high))
        else:
            runs[name] = [run for i in range(low, high) for run in _gap_free_runs(series[i], i, 0, series[i].num_steps)]
    return runs


def _train_stats(series: list[FieldSeries], runs: list[_Run], source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std (float32, shape (C,)) over the train part, ignoring NaN; one run in memory at a time."""
    if not runs:
        raise FieldDataError(f"{source}: the train split is empty; give it a larger share of split_fractions")
    channels = series[0].values.shape[1]
    count, total, squares = np.zeros(channels), np.zeros(channels), np.zeros(channels)
    for run in runs:
        part = series[run.series_index].values[run.start : run.stop].astype(np.float64)
        valid = np.isfinite(part)
        part = np.where(valid, part, 0.0)
        count += valid.sum(axis=(0, 2, 3))
        total += part.sum(axis=(0, 2, 3))
        squares += (part * part).sum(axis=(0, 2, 3))
    if not count.all():
        empty = [name for name, n in zip(series[0].variables, count, strict=True) if not n]
        raise FieldDataError(f"{source}: variables {empty} have no valid value in the train split")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)  # a constant channel normalises to 0
    return mean.astype(np.float32), std.astype(np.float32)


def _window_starts(runs: list[_Run], length: int, stride: int) -> list[tuple[int, int]]:
    return [(run.series_index, start) for run in runs for start in range(run.start, run.stop - length + 1, stride)]
