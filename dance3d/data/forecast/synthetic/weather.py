"""``weather``: WeatherBench-like lat-lon fields (2 m temperature, 500 hPa geopotential height).

Each sample is a zonal climatology plus anomalies (blobs and planetary waves) carried by a
latitude-dependent westerly jet (per-sample strength, with a slow meridional drift) and diffused,
stepped semi-Lagrangian on a regular grid with latitude cell centres from pole to pole.
"""

from __future__ import annotations

import numpy as np

VARIABLES = ("t2m", "z500")
UNITS = ("K", "m")
CALM_ANOMALY = (1.0, 20.0)  # per variable: |anomaly| below this (and little change) is calm
CALM_CHANGE = (0.2, 4.0)


def latitudes(height: int) -> np.ndarray:
    """Cell-centre latitudes in degrees, north to south (like ERA5 grids)."""
    step = 180.0 / height
    return (90.0 - step / 2 - step * np.arange(height)).astype(np.float32)


def longitudes(width: int) -> np.ndarray:
    return (360.0 / width * np.arange(width)).astype(np.float32)


def climatology(height: int, width: int) -> np.ndarray:
    """(2, H, W) zonal means: warm tropics, low heights at the poles."""
    s2 = np.sin(np.deg2rad(latitudes(height)))[:, None] ** 2 * np.ones((1, width), dtype=np.float32)
    return np.stack([300.0 - 55.0 * s2, 5850.0 - 700.0 * s2]).astype(np.float32)


def generate(rng: np.random.Generator, *, frames: int, height: int, width: int) -> np.ndarray:
    """One sample's frames, float32 (frames, 2, height, width) in K and m."""
    lat = np.deg2rad(latitudes(height))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    anomaly = np.zeros((2, height, width), dtype=np.float32)
    for _ in range(int(rng.integers(1, 9))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(1.5, 4.0), rng.uniform(2.0, 8.0)
        dx = (xx - cx + width / 2) % width - width / 2  # periodic in longitude
        blob = np.exp(-0.5 * (((yy - cy) / ry) ** 2 + (dx / rx) ** 2))
        sign = rng.choice([-1.0, 1.0])
        anomaly[0] += sign * rng.uniform(3.0, 10.0) * blob
        anomaly[1] += sign * rng.uniform(60.0, 200.0) * blob
    if rng.random() < 0.5:
        wave = np.sin(rng.integers(2, 6) * 2 * np.pi * xx / width + rng.uniform(0, 2 * np.pi))
        band = np.exp(-0.5 * ((np.rad2deg(lat)[:, None] - rng.choice([-45.0, 45.0])) / 12.0) ** 2)
        anomaly += np.array([2.0, 80.0], dtype=np.float32)[:, None, None] * (wave * band)[None]
    jet = rng.uniform(0.4, 1.6) * width / 64
    u = jet * (0.3 + 1.7 * np.exp(-0.5 * ((np.abs(np.rad2deg(lat)) - 45.0) / 15.0) ** 2))  # cells per step
    v = rng.normal(0.0, 0.15)
    kappa = rng.uniform(0.02, 0.08)
    base = climatology(height, width)
    values = np.empty((frames, 2, height, width), dtype=np.float32)
    for t in range(frames):
        values[t] = base + anomaly
        anomaly = _diffuse(_advect(anomaly, u, v), kappa)
    return values


def calm_mask(values: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """Small anomaly from the climatology and little change: (frames, 2, H, W) bool."""
    anomaly = np.abs(values - climatology(height, width)[None])
    change = np.zeros_like(values)
    change[1:] = np.abs(values[1:] - values[:-1])
    limit_a = np.array(CALM_ANOMALY, dtype=np.float32)[None, :, None, None]
    limit_c = np.array(CALM_CHANGE, dtype=np.float32)[None, :, None, None]
    return (anomaly < limit_a) & (change < limit_c)


def _advect(field: np.ndarray, u: np.ndarray, v: float) -> np.ndarray:
    """Shift each latitude row east by ``u[row]`` cells (periodic) and all rows by ``v`` (clamped)."""
    height, width = field.shape[1:]
    cols = np.arange(width)[None, :] - u[:, None]
    left = np.floor(cols).astype(int)
    frac = (cols - left).astype(np.float32)
    rows = np.arange(height)[:, None]
    shifted = field[:, rows, left % width] * (1 - frac) + field[:, rows, (left + 1) % width] * frac
    src = np.clip(np.arange(height) - v, 0, height - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, height - 1)
    w = (src - low).astype(np.float32)[None, :, None]
    return shifted[:, low] * (1 - w) + shifted[:, high] * w


def _diffuse(field: np.ndarray, kappa: float) -> np.ndarray:
    padded = np.pad(field, ((0, 0), (1, 1), (0, 0)), mode="edge")
    lap = padded[:, :-2] + padded[:, 2:] + np.roll(field, 1, axis=2) + np.roll(field, -1, axis=2) - 4 * field
    return field + kappa * lap
