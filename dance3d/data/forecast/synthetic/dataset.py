"""Synthetic forecasting datasets, deterministic by ``(seed, split, index)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dance3d.data.forecast.synthetic import storms, traffic, weather

SPLITS = ("train", "val", "test")
STATS_SAMPLES = 64  # training samples the per-channel mean/std are measured on


@dataclass(frozen=True)
class SyntheticForecastConfig:
    """One synthetic dataset's shape and sizes: ``t_in`` past frames -> ``t_out`` future frames."""

    name: str = "storms"
    t_in: int = 6
    t_out: int = 6
    height: int = 32
    width: int = 32
    seed: int = 0
    num_train: int = 512
    num_val: int = 128
    num_test: int = 256

    def __post_init__(self) -> None:
        if self.name not in DEFAULTS:
            raise ValueError(f"unknown synthetic forecasting dataset {self.name!r}; known: {', '.join(DEFAULTS)}")
        if min(self.t_in, self.t_out, self.num_train, self.num_val, self.num_test) < 1:
            raise ValueError("t_in, t_out and the sample counts must be >= 1")
        if min(self.height, self.width) < 8:
            raise ValueError(f"height and width must be >= 8, got {self.height}x{self.width}")

    def count(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]


DEFAULTS: dict[str, dict[str, int]] = {
    "storms": {"t_in": 6, "t_out": 6, "height": 32, "width": 32},
    "traffic": {"t_in": 6, "t_out": 4, "height": 32, "width": 32},
    "weather": {"t_in": 4, "t_out": 4, "height": 32, "width": 64},
}


def default_config(name: str, **overrides: Any) -> SyntheticForecastConfig:
    """``name``'s default shape with ``overrides`` (``None`` values keep the default)."""
    if name not in DEFAULTS:
        raise ValueError(f"unknown synthetic forecasting dataset {name!r}; known: {', '.join(DEFAULTS)}")
    settings = {**DEFAULTS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return SyntheticForecastConfig(name=name, **settings)


class SyntheticForecast(Dataset):
    """Samples ``{"inputs", "targets", "meta"}`` with values normalised per channel (``.mean``, ``.std``)."""

    def __init__(self, split: str, config: SyntheticForecastConfig) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split, self.config = split, config
        self.variables = {"storms": storms.VARIABLES, "traffic": traffic.VARIABLES, "weather": weather.VARIABLES}[
            config.name
        ]
        self.units = {"storms": storms.UNITS, "traffic": traffic.UNITS, "weather": weather.UNITS}[config.name]
        self.lat = weather.latitudes(config.height) if config.name == "weather" else None
        self.lon = weather.longitudes(config.width) if config.name == "weather" else None
        self.source = config.name
        self._city = None
        if config.name == "traffic":
            self._city = traffic.City(config.seed, height=config.height, width=config.width)
        self.mean, self.std = _channel_stats(config, self._city)

    def __len__(self) -> int:
        return self.config.count(self.split)

    def raw(self, index: int) -> tuple[np.ndarray, float]:
        """Sample ``index`` in physical units, (t_in + t_out, C, H, W), and its calm fraction."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.source} {self.split}: index {index} out of range 0..{len(self) - 1}")
        return _generate(self.config, self._city, split=self.split, index=index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        values, calm_fraction = self.raw(index)
        normalised = (values - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        tensor = torch.from_numpy(normalised.astype(np.float32))
        t_in = self.config.t_in
        return {
            "inputs": tensor[:t_in],
            "targets": tensor[t_in:],
            "meta": {"index": index, "calm_fraction": calm_fraction},
        }


def _generate(
    config: SyntheticForecastConfig, city: traffic.City | None, *, split: str, index: int
) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    frames = config.t_in + config.t_out
    if config.name == "storms":
        values = storms.generate(rng, frames=frames, height=config.height, width=config.width)
        calm = storms.calm_mask(values)
    elif config.name == "traffic":
        assert city is not None
        values = traffic.generate(rng, city, frames=frames)
        calm = traffic.calm_mask(values)
    else:
        values = weather.generate(rng, frames=frames, height=config.height, width=config.width)
        calm = weather.calm_mask(values, height=config.height, width=config.width)
    return values, float(calm.mean())


def _channel_stats(config: SyntheticForecastConfig, city: traffic.City | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std over the first training samples (the same for every split)."""
    count = min(STATS_SAMPLES, config.num_train)
    values = np.stack([_generate(config, city, split="train", index=i)[0] for i in range(count)])
    mean = values.mean(axis=(0, 1, 3, 4)).astype(np.float32)
    std = values.std(axis=(0, 1, 3, 4)).astype(np.float32)
    return mean, np.maximum(std, 1e-6).astype(np.float32)
