"""Score a forecaster on a dataset, beside the persistence baseline (the last input frame repeated)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from dance3d.errors import DataError
from dance3d.forecast.metrics import VIL_THRESHOLDS, ForecastScores
from dance3d.progress import progress_bar


@dataclass
class ForecastEvalResult:
    """Scores in physical units of the model and of persistence; per-sample records."""

    num_samples: int
    variables: tuple[str, ...]
    model: dict[str, Any]
    persistence: dict[str, Any]
    mse_normalised: float
    persistence_mse_normalised: float
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mse_ratio(self) -> float:
        """Model MSE over persistence MSE (below 1: the model beats persistence)."""
        return self.model["mse"] / self.persistence["mse"] if self.persistence["mse"] > 0 else float("nan")

    def to_dict(self, *, with_records: bool = True) -> dict[str, Any]:
        out = {
            "num_samples": self.num_samples,
            "variables": list(self.variables),
            "model": self.model,
            "persistence": self.persistence,
            "mse_ratio_to_persistence": self.mse_ratio,
            "mse_normalised": self.mse_normalised,
            "persistence_mse_normalised": self.persistence_mse_normalised,
        }
        if with_records:
            out["records"] = self.records
        return out


def thresholds_for(variables: tuple[str, ...]) -> tuple[float, ...]:
    """CSI thresholds: the VIL levels for a single ``vil`` channel, none otherwise."""
    return VIL_THRESHOLDS if tuple(variables) == ("vil",) else ()


@torch.no_grad()
def evaluate_forecast(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    limit: int | None = None,
    progress: bool = True,
) -> ForecastEvalResult:
    """Run ``model`` over ``dataset`` (or its first ``limit`` samples); persistence is scored on the same samples."""
    mean = np.asarray(dataset.mean, dtype=np.float64)[None, None, :, None, None]
    std = np.asarray(dataset.std, dtype=np.float64)[None, None, :, None, None]
    variables = tuple(dataset.variables)
    lat = getattr(dataset, "lat", None)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise DataError("the evaluation dataset is empty")
    thresholds = thresholds_for(variables)
    scores = {name: ForecastScores(variables, lat=lat, thresholds=thresholds) for name in ("model", "persistence")}
    model = model.to(device).eval()
    records: list[dict[str, Any]] = []
    squared = {"model": 0.0, "persistence": 0.0}
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for batch in progress_bar(loader, desc="eval", unit="batch", disable=not progress):
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        predictions = {"model": model(inputs).float(), "persistence": inputs[:, -1:].expand_as(targets)}
        if not torch.isfinite(predictions["model"]).all():
            first = len(records)
            raise DataError(f"the model produced NaN/inf forecasts on samples {first}..{first + len(inputs) - 1}")
        truth = targets.double().cpu().numpy() * std + mean
        per_sample = {}
        for name, pred in predictions.items():
            squared[name] += float(((pred - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum())
            per_sample[name] = scores[name].update(pred.double().cpu().numpy() * std + mean, truth)
        meta = batch.get("meta", {})
        for i in range(len(inputs)):
            row = {k: (v[i].item() if isinstance(v, torch.Tensor) else v[i]) for k, v in meta.items()}
            row.update({"mse": float(per_sample["model"][i]), "persistence_mse": float(per_sample["persistence"][i])})
            records.append(row)
    count = len(records)
    return ForecastEvalResult(
        num_samples=count,
        variables=variables,
        model=scores["model"].summary(),
        persistence=scores["persistence"].summary(),
        mse_normalised=squared["model"] / count,
        persistence_mse_normalised=squared["persistence"] / count,
        records=records,
    )
