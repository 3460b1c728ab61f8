"""Forecast scores in physical units: MSE/MAE per lead time, RMSE, CSI/POD/FAR, latitude-weighted RMSE.

Arrays are (N, T_out, C, H, W). ``ForecastScores`` accumulates batches so a whole split never
sits in memory; the functions below it score one array pair and are what the tests check by hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

VIL_THRESHOLDS = (16.0, 74.0, 133.0, 160.0, 181.0, 219.0)


def mse_per_lead(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T_out,) mean squared error of each lead time."""
    return ((pred - target) ** 2).mean(axis=(0, 2, 3, 4))


def mae_per_lead(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T_out,) mean absolute error of each lead time."""
    return np.abs(pred - target).mean(axis=(0, 2, 3, 4))


def contingency(pred: np.ndarray, target: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """(hits, misses, false alarms) of the event ``value >= threshold``."""
    forecast, observed = pred >= threshold, target >= threshold
    hits = int(np.count_nonzero(forecast & observed))
    return hits, int(np.count_nonzero(~forecast & observed)), int(np.count_nonzero(forecast & ~observed))


def csi_pod_far(hits: int, misses: int, false_alarms: int) -> dict[str, float]:
    """Critical success index, probability of detection, false alarm ratio (NaN when undefined)."""

    def ratio(num: int, den: int) -> float:
        return num / den if den else math.nan

    return {
        "csi": ratio(hits, hits + misses + false_alarms),
        "pod": ratio(hits, hits + misses),
        "far": ratio(false_alarms, hits + false_alarms),
    }


def latitude_weights(lat_deg: np.ndarray) -> np.ndarray:
    """cos(latitude), normalised to mean 1 (WeatherBench)."""
    weights = np.cos(np.deg2rad(np.asarray(lat_deg, dtype=np.float64)))
    return weights / weights.mean()


def lat_weighted_rmse(pred: np.ndarray, target: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """(T_out, C) WeatherBench RMSE: per sample sqrt of the latitude-weighted spatial mean, averaged over samples."""
    weights = latitude_weights(lat_deg)[None, None, None, :, None]
    per_sample = np.sqrt((weights * (pred - target) ** 2).mean(axis=(3, 4)))  # (N, T_out, C)
    return per_sample.mean(axis=0)


class ForecastScores:
    """Streaming scores of one forecaster over a split."""

    def __init__(
        self, variables: tuple[str, ...], *, lat: np.ndarray | None = None, thresholds: tuple[float, ...] = ()
    ) -> None:
        self.variables, self.lat, self.thresholds = tuple(variables), lat, tuple(thresholds)
        self.samples = 0
        self._sq: np.ndarray | None = None  # (T_out, C) sums over samples of spatial-mean squared error
        self._abs: np.ndarray | None = None
        self._lat_rmse: np.ndarray | None = None
        self._table = np.zeros((len(self.thresholds), 3), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Add a batch; returns each sample's MSE (N,)."""
        if pred.shape != target.shape or pred.ndim != 5:
            raise ValueError(f"pred and target must both be (N, T_out, C, H, W), got {pred.shape} and {target.shape}")
        pred, target = pred.astype(np.float64), target.astype(np.float64)
        err = pred - target
        sq, ab = (err**2).mean(axis=(3, 4)), np.abs(err).mean(axis=(3, 4))  # (N, T_out, C)
        self._sq = sq.sum(0) if self._sq is None else self._sq + sq.sum(0)
        self._abs = ab.sum(0) if self._abs is None else self._abs + ab.sum(0)
        if self.lat is not None:
            rmse = lat_weighted_rmse(pred, target, self.lat) * len(pred)
            self._lat_rmse = rmse if self._lat_rmse is None else self._lat_rmse + rmse
        for row, threshold in enumerate(self.thresholds):
            self._table[row] += contingency(pred, target, threshold)
        self.samples += len(pred)
        return sq.mean(axis=(1, 2))

    def summary(self) -> dict[str, Any]:
        """Scores over every sample seen, as plain numbers and lists."""
        if not self.samples or self._sq is None or self._abs is None:
            raise ValueError("no samples were scored")
        sq, ab = self._sq / self.samples, self._abs / self.samples
        out: dict[str, Any] = {
            "mse": float(sq.mean()),
            "mae": float(ab.mean()),
            "rmse": float(math.sqrt(sq.mean())),
            "mse_per_lead": sq.mean(axis=1).tolist(),
            "mae_per_lead": ab.mean(axis=1).tolist(),
            "rmse_per_variable": {v: float(math.sqrt(sq[:, c].mean())) for c, v in enumerate(self.variables)},
        }
        if self._lat_rmse is not None:
            rmse = self._lat_rmse / self.samples
            out["lat_weighted_rmse"] = {v: float(rmse[:, c].mean()) for c, v in enumerate(self.variables)}
            out["lat_weighted_rmse_per_lead"] = {v: rmse[:, c].tolist() for c, v in enumerate(self.variables)}
        if self.thresholds:
            out["categorical"] = {
                f"{threshold:g}": csi_pod_far(*map(int, self._table[row]))
                for row, threshold in enumerate(self.thresholds)
            }
            out["csi_mean"] = float(np.nanmean([v["csi"] for v in out["categorical"].values()]))
        return out
