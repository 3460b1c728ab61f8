"""``traffic``: TaxiBJ-like inflow/outflow counts per 30-minute interval on a city grid.

One city per seed (roads, residential and business hot-spots); flows follow daily and weekly
cycles (residential areas empty in the morning and fill in the evening, business areas the
reverse), plus events (a stadium-like burst at a random place and time) and Poisson noise.
Each sample starts at a random interval of a year.
"""

from __future__ import annotations

import numpy as np

VARIABLES = ("inflow", "outflow")
UNITS = ("vehicles per 30 min", "vehicles per 30 min")
INTERVALS_PER_DAY = 48
QUIET_FLOW = 1.0  # a cell with less flow than this (and no change) is calm


class City:
    """Fixed layout of one city: road density and hot-spot footprints, (H, W) arrays."""

    def __init__(self, seed: int, *, height: int, width: int) -> None:
        rng = np.random.default_rng([seed, 7331])
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        roads = np.zeros((height, width), dtype=np.float32)
        for _ in range(max(2, (height + width) // 12)):
            if rng.random() < 0.5:
                roads[int(rng.integers(height)), :] += 1.0
            else:
                roads[:, int(rng.integers(width))] += 1.0
        ring = np.hypot(yy - height / 2, xx - width / 2)
        roads += (np.abs(ring - min(height, width) / 3) < 0.8).astype(np.float32)
        self.roads = np.minimum(roads, 2.0)
        self.residential = self._spots(rng, yy, xx, count=5)
        self.business = self._spots(rng, yy, xx, count=3)
        self.scale = 0.25 + self.roads + 3.0 * self.residential + 4.0 * self.business
        self.scale *= rng.uniform(0.0, 1.0, size=(height, width)) > 0.15  # parks, water: no flow

    @staticmethod
    def _spots(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, *, count: int) -> np.ndarray:
        out = np.zeros_like(yy)
        height, width = yy.shape
        for _ in range(count):
            cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(1.5, 4.0)
            out += np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2)
        return out


def generate(rng: np.random.Generator, city: City, *, frames: int) -> np.ndarray:
    """One sample's frames, float32 (frames, 2, H, W) in vehicles per interval."""
    start = int(rng.integers(0, 364 * INTERVALS_PER_DAY))
    steps = start + np.arange(frames)
    hour = (steps % INTERVALS_PER_DAY) / 2.0
    weekday = (steps // INTERVALS_PER_DAY) % 7 < 5
    activity = 0.15 + np.exp(-0.5 * ((hour - 8.5) / 1.5) ** 2) + np.exp(-0.5 * ((hour - 18.0) / 2.0) ** 2)
    activity += 0.5 * np.exp(-0.5 * ((hour - 13.0) / 3.0) ** 2)
    activity *= np.where(weekday, 1.0, 0.7)
    morning = np.exp(-0.5 * ((hour - 8.0) / 1.5) ** 2) * weekday
    evening = np.exp(-0.5 * ((hour - 18.0) / 1.8) ** 2) * weekday
    level = rng.uniform(8.0, 14.0)
    base = level * activity[:, None, None] * city.scale[None]
    commute_out = 25.0 * (morning[:, None, None] * city.residential + evening[:, None, None] * city.business)
    commute_in = 25.0 * (morning[:, None, None] * city.business + evening[:, None, None] * city.residential)
    inflow, outflow = base + commute_in, base + commute_out
    if rng.random() < 0.4:  # an event: arrivals build up, then everyone leaves at once
        height, width = city.scale.shape
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        spot = rng.uniform(60.0, 150.0) * np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(1.0, 2.5) ** 2)
        onset = rng.uniform(-2, frames)
        t = np.arange(frames)[:, None, None]
        inflow = inflow + spot * np.exp(-0.5 * ((t - onset) / 1.5) ** 2)
        outflow = outflow + spot * np.exp(-0.5 * ((t - onset - 4) / 1.5) ** 2)
    mean = np.stack([inflow, outflow], axis=1) * (city.scale > 0)[None, None]
    return rng.poisson(mean).astype(np.float32)


def calm_mask(values: np.ndarray) -> np.ndarray:
    """Almost no flow now and no change from the interval before: (frames, 2, H, W) bool."""
    quiet = values < QUIET_FLOW
    change = np.zeros_like(values)
    change[1:] = np.abs(values[1:] - values[:-1])
    return quiet & (change < QUIET_FLOW)
