"""Measure one configuration of a co-pruned forecaster: forecast MSE, MACs, kept shares, latency and energy.

MSE is ``dance3d eval``'s: the mean over samples, lead times and variables of the spatial mean
squared error in physical units (the normalised data scaled back by the dataset's std and mean,
:class:`dance3d.forecast.metrics.ForecastScores`). MACs are the co-pruned model's per-sample
accounting of what its masks leave to compute (``last_macs``; ``docs/copruning.md``). Latency and
energy are measured like a dynamic model's (:func:`studies.measure.measure_speed`) on one batch of
the first ``batch_size`` samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from dance3d.copruning import CoprunedForecaster
from dance3d.data.registry import DataConfig
from dance3d.errors import ConfigError, DataError
from dance3d.forecast.checkpoint import frames
from dance3d.forecast.metrics import ForecastScores
from dance3d.loading import LoadedModel
from studies.measure import EnergySetup, counted_costs, measure_speed

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ForecastSet:
    """Validation samples stacked once, and how to scale them back to physical units."""

    inputs: torch.Tensor  # (N, t_in, C, H, W), normalised
    targets: torch.Tensor  # (N, t_out, C, H, W), normalised
    mean: np.ndarray  # broadcasts over (N, T, C, H, W)
    std: np.ndarray
    variables: tuple[str, ...]
    lat: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device: torch.device) -> ForecastSet:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))


def forecast_data(loaded: LoadedModel, data: DataConfig | None = None) -> DataConfig:
    """The data a forecaster is scored on (``dance3d eval``'s): ``data`` or the checkpoint's, at its frame counts."""
    data = data or loaded.data
    t_in, t_out = frames(loaded.checkpoint)
    return replace(data, forecast=replace(data.forecast, t_in=t_in, t_out=t_out))


def load_forecast_set(dataset: Dataset, *, limit: int | None = None) -> ForecastSet:
    """The first ``limit`` samples of a forecast dataset (all if None) as tensors."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise DataError("the validation dataset is empty")
    items = [dataset[i] for i in range(count)]
    return ForecastSet(
        inputs=torch.stack([item["inputs"] for item in items]),
        targets=torch.stack([item["targets"] for item in items]),
        mean=np.asarray(dataset.mean, dtype=np.float64)[None, None, :, None, None],
        std=np.asarray(dataset.std, dtype=np.float64)[None, None, :, None, None],
        variables=tuple(dataset.variables),
        lat=getattr(dataset, "lat", None),
    )


def _percentiles(values: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}_p{q}": float(np.percentile(values, q)) for q in (10, 50, 90)}


def summarise_masks(model: CoprunedForecaster, rows: dict[str, list]) -> dict[str, Any]:
    """Mean MACs, MAC fraction (mean, p10/p50/p90), kept share of positions and of each block's channels."""
    fractions = np.array(rows["mac_fraction"], dtype=float)
    out = {
        "macs": float(np.mean(rows["macs"])),
        "mac_fraction": float(fractions.mean()),
        **_percentiles(fractions, "mac_fraction"),
        "position_fraction": float(np.mean(rows["position_fraction"])),
        "keep_rates": {},
    }
    if rows["channel_fractions"]:
        per_block = np.concatenate(rows["channel_fractions"]).mean(axis=0)
        out["keep_rates"] = {f"g{i}.channel_keep": float(v) for i, v in enumerate(per_block)}
    return out


@dataclass
class ForecastMeasurer:
    """Measures configurations of one co-pruned forecaster on one worker with fixed settings."""

    data: ForecastSet
    device: torch.device
    eval_batch_size: int
    latency_warmup: int
    latency_repeats: int
    energy: EnergySetup

    @torch.no_grad()
    def score(
        self, forward: Forward, *, copruned: CoprunedForecaster | None
    ) -> tuple[dict[str, float], dict[str, list]]:
        """MSE (physical and normalised) of ``forward`` over the samples; with ``copruned``, its per-sample masks."""
        scores = ForecastScores(self.data.variables, lat=self.data.lat)
        squared = 0.0
        rows: dict[str, list] = {"macs": [], "mac_fraction": [], "position_fraction": [], "channel_fractions": []}
        mean, std = self.data.mean, self.data.std
        for start in range(0, len(self.data), self.eval_batch_size):
            inputs = self.data.inputs[start : start + self.eval_batch_size]
            targets = self.data.targets[start : start + self.eval_batch_size]
            pred = forward(inputs).float()
            if not torch.isfinite(pred).all():
                raise DataError(f"the model produced NaN/inf forecasts on samples {start}..{start + len(inputs) - 1}")
            squared += float(((pred - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum())
            truth = targets.double().cpu().numpy() * std + mean
            scores.update(pred.double().cpu().numpy() * std + mean, truth)
            if copruned is not None:
                decisions = copruned.last_decisions
                rows["macs"] += copruned.last_macs.detach().cpu().tolist()
                rows["mac_fraction"] += copruned.last_mac_fraction.detach().cpu().tolist()
                rows["position_fraction"] += decisions.position_fraction().detach().cpu().tolist()
                channels = decisions.channel_fractions()
                if channels is not None:
                    rows["channel_fractions"].append(channels.detach().cpu().numpy())
        return {"mse": scores.summary()["mse"], "mse_normalised": squared / len(self.data)}, rows

    def measure(
        self,
        forward: Forward,
        *,
        module: nn.Module,
        batch_size: int,
        copruned: CoprunedForecaster | None,
        dense_macs: float,
    ) -> dict[str, Any]:
        """All measurements of one configuration (``forward`` already set up); units in the keys.

        With ``copruned`` (the model ``forward`` runs) MACs come from its masks; without (a dense
        forecaster) they are counted from the executed ops of one sample, relative to ``dense_macs``.
        """
        if batch_size > len(self.data):
            raise ConfigError(f"batch size {batch_size} is larger than the {len(self.data)} validation samples")
        started = time.perf_counter()
        quality, rows = self.score(forward, copruned=copruned)
        if copruned is not None:
            costs = summarise_masks(copruned, rows)
        else:
            costs = counted_costs(forward, self.data.inputs[:1], module=module, dense_macs=dense_macs)
            costs["position_fraction"] = 1.0
        speed = measure_speed(
            forward,
            self.data.inputs[:batch_size],
            module=module,
            device=self.device,
            warmup=self.latency_warmup,
            repeats=self.latency_repeats,
            energy=self.energy,
        )
        return {
            **quality,
            "num_clips": len(self.data),
            **costs,
            **speed,
            "measure_s": time.perf_counter() - started,
        }
