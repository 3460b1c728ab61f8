"""``storms``: SEVIR-VIL-like radar frames (0-255) of convective cells on a calm background.

Cells advect with a steering wind shared by the sample (each cell drifts a little off it), grow
and decay over a life cycle, and are elliptical Gaussian cores quantised to whole VIL levels.
Samples range from clear sky to many cells, so their calm fraction varies widely.
"""

from __future__ import annotations

import numpy as np

VARIABLES = ("vil",)
UNITS = ("vil level 0-255",)
CLEAR_SKY_LEVEL = 2.0  # below this a pixel shows no echo and is set to 0


def generate(rng: np.random.Generator, *, frames: int, height: int, width: int) -> np.ndarray:
    """One sample's frames, float32 (frames, 1, height, width) in VIL levels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    values = np.zeros((frames, height, width), dtype=np.float32)
    scale = min(height, width) / 48.0
    num_cells = int(rng.choice(np.arange(0, 11), p=_cell_count_weights()))
    steering = rng.normal(0.0, 1.0, size=2) * scale
    for _ in range(num_cells):
        y0, x0 = rng.uniform(-0.2, 1.2) * height, rng.uniform(-0.2, 1.2) * width
        velocity = steering + rng.normal(0.0, 0.25, size=2) * scale
        sigma_major = rng.uniform(2.0, 7.0) * scale
        sigma_minor = sigma_major * rng.uniform(0.5, 1.0)
        angle = rng.uniform(0, np.pi)
        peak = rng.uniform(40.0, 300.0)
        birth = rng.uniform(-frames, frames * 0.8)
        life = rng.uniform(frames * 0.8, frames * 3.0)
        cos_a, sin_a = np.cos(angle), np.sin(angle)
        for t in range(frames):
            phase = (t - birth) / life
            if not 0.0 < phase < 1.0:
                continue
            amplitude = peak * np.sin(np.pi * phase) ** 1.5
            dy, dx = yy - (y0 + velocity[0] * t), xx - (x0 + velocity[1] * t)
            u, v = cos_a * dx + sin_a * dy, -sin_a * dx + cos_a * dy
            growth = 0.8 + 0.4 * np.sin(np.pi * phase)  # cells widen as they mature
            distance = (u / (sigma_major * growth)) ** 2 + (v / (sigma_minor * growth)) ** 2
            values[t] += amplitude * np.exp(-0.5 * distance)
    values = np.round(np.clip(values, 0.0, 255.0))
    values[values < CLEAR_SKY_LEVEL] = 0.0
    return values[:, None]


def calm_mask(values: np.ndarray) -> np.ndarray:
    """No echo now and none in the frame before: (frames, 1, H, W) bool."""
    quiet = values == 0.0
    calm = quiet.copy()
    calm[1:] &= quiet[:-1]
    return calm


def _cell_count_weights() -> np.ndarray:
    weights = np.array([0.12, 0.14, 0.14, 0.12, 0.1, 0.09, 0.08, 0.07, 0.06, 0.04, 0.04])
    return weights / weights.sum()
