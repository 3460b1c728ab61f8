"""Forecast metrics against hand-computed values, and evaluation beside persistence."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from dance3d.errors import DataError
from dance3d.forecast.evaluation import evaluate_forecast, thresholds_for
from dance3d.forecast.metrics import (
    VIL_THRESHOLDS,
    ForecastScores,
    contingency,
    csi_pod_far,
    lat_weighted_rmse,
    latitude_weights,
    mae_per_lead,
    mse_per_lead,
)


def test_mse_and_mae_per_lead_by_hand():
    target = np.zeros((1, 2, 1, 1, 2))
    pred = np.array([[[[[1.0, 3.0]]], [[[-2.0, 0.0]]]]])  # lead 1 errors 1, 3; lead 2 errors -2, 0
    np.testing.assert_allclose(mse_per_lead(pred, target), [5.0, 2.0])
    np.testing.assert_allclose(mae_per_lead(pred, target), [2.0, 1.0])


def test_csi_pod_far_by_hand():
    target = np.array([20.0, 20.0, 20.0, 0.0, 0.0, 80.0])
    pred = np.array([20.0, 17.0, 0.0, 30.0, 0.0, 10.0])
    hits, misses, false_alarms = contingency(pred, target, 16.0)
    assert (hits, misses, false_alarms) == (2, 2, 1)
    scores = csi_pod_far(hits, misses, false_alarms)
    assert scores == pytest.approx({"csi": 2 / 5, "pod": 2 / 4, "far": 1 / 3})
    assert math.isnan(csi_pod_far(0, 0, 0)["csi"])  # no event forecast or observed: undefined, not 0


def test_latitude_weighted_rmse_by_hand():
    lat = np.array([60.0, 0.0])  # weights cos: 0.5, 1 -> normalised 2/3, 4/3
    np.testing.assert_allclose(latitude_weights(lat), [2 / 3, 4 / 3])
    target = np.zeros((2, 1, 1, 2, 1))
    pred = np.zeros_like(target)
    pred[0, 0, 0, 0, 0] = 3.0  # sample 0: error 3 at 60 deg -> sqrt(mean(2/3*9, 0)) = sqrt(3)
    pred[1, 0, 0, 1, 0] = 3.0  # sample 1: error 3 at the equator -> sqrt(4/3*9/2) = sqrt(6)
    np.testing.assert_allclose(lat_weighted_rmse(pred, target, lat), [[(math.sqrt(3) + math.sqrt(6)) / 2]])


def test_streaming_scores_match_the_whole_array_functions():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 255, size=(7, 3, 1, 5, 4))
    pred = target + rng.normal(0, 30, size=target.shape)
    scores = ForecastScores(("vil",), lat=np.linspace(-60, 60, 5), thresholds=VIL_THRESHOLDS)
    scores.update(pred[:3], target[:3])
    scores.update(pred[3:], target[3:])
    summary = scores.summary()
    np.testing.assert_allclose(summary["mse_per_lead"], mse_per_lead(pred, target))
    assert summary["rmse"] == pytest.approx(math.sqrt(((pred - target) ** 2).mean()))
    expected = lat_weighted_rmse(pred, target, np.linspace(-60, 60, 5))[:, 0].mean()
    assert summary["lat_weighted_rmse"]["vil"] == pytest.approx(expected)
    assert summary["categorical"]["74"] == pytest.approx(csi_pod_far(*contingency(pred, target, 74.0)))
    with pytest.raises(ValueError, match="must both be"):
        scores.update(pred[:, :2], target)


def test_csi_thresholds_only_for_vil():
    assert thresholds_for(("vil",)) == (16.0, 74.0, 133.0, 160.0, 181.0, 219.0)
    assert thresholds_for(("inflow", "outflow")) == ()


class ListDataset(torch.utils.data.Dataset):
    variables, lat = ("x",), None
    mean, std = np.array([10.0]), np.array([2.0])

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


class Persistence(nn.Module):
    def forward(self, x):
        return x[:, -1:].expand(-1, 2, -1, -1, -1)


class Oracle(Persistence):
    """Knows the future: the field grows by one (normalised) unit per frame."""

    def forward(self, x):
        return x[:, -1:] + torch.arange(1, 3, dtype=x.dtype)[None, :, None, None, None]


def ramp_samples(count):
    samples = []
    for i in range(count):
        frames = torch.arange(5, dtype=torch.float32)[:, None, None, None].expand(5, 1, 3, 3) + i
        samples.append({"inputs": frames[:3], "targets": frames[3:], "meta": {"index": i, "calm_fraction": 0.0}})
    return samples


def test_evaluation_scores_persistence_on_the_same_samples_in_physical_units():
    dataset = ListDataset(ramp_samples(4))
    result = evaluate_forecast(Persistence(), dataset, batch_size=3, progress=False)
    assert result.mse_ratio == pytest.approx(1.0)
    # persistence misses by 1 and 2 normalised units -> 2 and 4 physical units (std 2)
    np.testing.assert_allclose(result.persistence["mse_per_lead"], [4.0, 16.0])
    oracle = evaluate_forecast(Oracle(), dataset, batch_size=3, progress=False)
    assert oracle.model["mse"] == pytest.approx(0.0) and oracle.mse_ratio == pytest.approx(0.0)
    assert [r["index"] for r in oracle.records] == [0, 1, 2, 3]
    assert oracle.records[0]["persistence_mse"] == pytest.approx(10.0)


def test_nan_forecasts_are_refused_with_the_sample_range():
    class Broken(Persistence):
        def forward(self, x):
            return super().forward(x) * float("nan")

    with pytest.raises(DataError, match="NaN/inf forecasts on samples 0..1"):
        evaluate_forecast(Broken(), ListDataset(ramp_samples(2)), progress=False)
