"""Windowing of field series: contiguous splits, train-only statistics, gaps, NaN policies, calm_fraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dance3d.data.forecast.series import FieldDataError, FieldSeries
from dance3d.data.forecast.windows import WindowedFieldDataset
from dance3d.errors import DataError


def _series(steps: int = 40, *, variables=("t2m",), times=True, seed: int = 0, source="test.nc") -> FieldSeries:
    rng = np.random.default_rng(seed)
    values = (rng.normal(size=(steps, len(variables), 4, 5)) + np.arange(steps)[:, None, None, None]).astype(np.float32)
    axis = np.datetime64("2020-01-01T00") + np.arange(steps) * np.timedelta64(6, "h") if times else None
    return FieldSeries(values, tuple(variables), axis, np.linspace(-60, 60, 4), np.linspace(0, 350, 5), source)


def test_splits_are_contiguous_and_no_window_crosses_a_boundary():
    series = _series(40)
    spans = {}
    for split in ("train", "val", "test"):
        data = WindowedFieldDataset(series, t_in=3, t_out=2, split=split)
        starts = [start for _, start in data.windows]
        spans[split] = (min(starts), max(starts) + 5)
        assert starts == sorted(starts) and np.all(np.diff(starts) == 1)
    assert spans == {"train": (0, 28), "val": (28, 34), "test": (34, 40)}


def test_sample_dict_shapes_and_normalisation_undo():
    series = _series(40, variables=("t2m", "z500"))
    data = WindowedFieldDataset(series, t_in=3, t_out=2, split="val")
    sample = data[1]
    assert sample["inputs"].shape == (3, 2, 4, 5) and sample["targets"].shape == (2, 2, 4, 5)
    assert sample["inputs"].dtype == torch.float32
    start = sample["meta"]["start"]
    physical = sample["targets"].numpy() * data.std[None, :, None, None] + data.mean[None, :, None, None]
    np.testing.assert_allclose(physical, series.values[start + 3 : start + 5], rtol=1e-5, atol=1e-4)
    assert data.variables == ("t2m", "z500") and data.lat is series.lat


def test_stats_come_from_the_train_part_only():
    series = _series(40)
    train_part = series.values[:28]
    for split in ("train", "val", "test"):
        data = WindowedFieldDataset(series, t_in=3, t_out=2, split=split)
        np.testing.assert_allclose(data.mean, [train_part.mean()], rtol=1e-5)
        np.testing.assert_allclose(data.std, [train_part.std()], rtol=1e-5)
    # The series trends upwards, so the whole series' mean is far from the train part's.
    assert abs(series.values.mean() - train_part.mean()) > 3


def test_deterministic_and_stride():
    series = _series(40)
    first = WindowedFieldDataset(series, t_in=3, t_out=2, split="train", stride=4)
    second = WindowedFieldDataset(series, t_in=3, t_out=2, split="train", stride=4)
    assert [start for _, start in first.windows] == list(range(0, 24, 4))
    for index in range(len(first)):
        assert torch.equal(first[index]["inputs"], second[index]["inputs"])
        assert first[index]["meta"] == second[index]["meta"]


def test_too_few_steps_names_the_source():
    with pytest.raises(ValueError, match=r"short\.nc: too few time steps for t_in \+ t_out = 12 in the train split"):
        WindowedFieldDataset(_series(12, source="short.nc"), t_in=8, t_out=4, split="train")
    with pytest.raises(DataError, match="too few time steps"):
        WindowedFieldDataset(_series(40), t_in=5, t_out=3, split="val")


def test_windows_never_cross_a_time_gap():
    series = _series(40)
    times = series.times.copy()
    times[20:] += np.timedelta64(2, "D")  # missing slots between steps 19 and 20
    gapped = FieldSeries(series.values, series.variables, times, series.lat, series.lon, series.source)
    data = WindowedFieldDataset(gapped, t_in=3, t_out=2, split="train")
    starts = [start for _, start in data.windows]
    assert all(not (start < 20 < start + 5) for start in starts)
    assert 15 in starts and 20 in starts and 16 not in starts


def test_several_series_split_by_whole_series():
    events = [_series(10, seed=seed, source=f"event{seed}") for seed in range(10)]
    train = WindowedFieldDataset(events, t_in=3, t_out=2, split="train")
    test = WindowedFieldDataset(events, t_in=3, t_out=2, split="test")
    assert {index for index, _ in train.windows} == set(range(7))
    assert {index for index, _ in test.windows} == {8, 9}
    assert len(train) == 7 * 6 and all(start + 5 <= 10 for _, start in train.windows)
    with pytest.raises(FieldDataError, match="do not match"):
        WindowedFieldDataset([events[0], _series(10, variables=("u", "v"))], t_in=3, t_out=2, split="train")


def test_nan_refused_with_count_or_filled_with_train_mean():
    series = _series(40, source="holes.nc")
    series.values[30, 0, 1, 1] = np.nan
    series.values[31, 0, 2, 2] = np.nan
    with pytest.raises(FieldDataError, match=r"holes\.nc: 2 missing .*'t2m': 2.*nan_policy='fill'"):
        WindowedFieldDataset(series, t_in=3, t_out=2, split="train")
    data = WindowedFieldDataset(series, t_in=3, t_out=2, split="val", nan_policy="fill")
    sample = data[[start for _, start in data.windows].index(29)]
    assert torch.isfinite(sample["inputs"]).all()
    assert sample["inputs"][1, 0, 1, 1].item() == 0.0  # the train mean, normalised
    with pytest.raises(FieldDataError, match="unknown nan_policy"):
        WindowedFieldDataset(series, t_in=3, t_out=2, split="val", nan_policy="zero")


def test_bad_arguments_are_clear():
    series = _series(40)
    with pytest.raises(FieldDataError, match="unknown split"):
        WindowedFieldDataset(series, t_in=3, t_out=2, split="dev")
    with pytest.raises(FieldDataError, match="summing to 1"):
        WindowedFieldDataset(series, t_in=3, t_out=2, split="train", split_fractions=(0.5, 0.2, 0.2))


def test_calm_fraction_no_signal_and_no_change():
    values = np.zeros((10, 2, 4, 4), dtype=np.float32)
    values[:, 0, :2] = 50.0  # VIL: half of every frame above the no-signal level
    values[:, 1] = np.arange(10, dtype=np.float32)[:, None, None]  # t2m: changes everywhere...
    values[:, 1, 0, 0] = 3.0  # ...but one pixel stays put
    series = FieldSeries(values, ("vil", "t2m"), None, None, None, "calm.h5")
    data = WindowedFieldDataset(series, t_in=2, t_out=2, split="train", split_fractions=(1.0, 0.0, 0.0))
    calm = data[0]["meta"]["calm_fraction"]
    assert calm == pytest.approx(0.5 * 0.5 + 0.5 * (1 / 16))
    still = FieldSeries(np.ones((10, 1, 4, 4), np.float32), ("t2m",), None, None, None, "still.nc")
    assert WindowedFieldDataset(still, t_in=2, t_out=2, split="train", split_fractions=(1, 0, 0))[0]["meta"][
        "calm_fraction"
    ] == pytest.approx(1.0)


def test_series_validation():
    with pytest.raises(FieldDataError, match=r"bad\.nc: 2 channels but 1 variable names"):
        FieldSeries(np.zeros((3, 2, 4, 4), np.float32), ("a",), None, None, None, "bad.nc")
    with pytest.raises(FieldDataError, match="lat must have shape"):
        FieldSeries(np.zeros((3, 1, 4, 4), np.float32), ("a",), None, np.zeros(5), None, "bad.nc")
    with pytest.raises(FieldDataError, match="no variable"):
        _series(5).select(["sst"])


def test_default_collate_batches_samples():
    data = WindowedFieldDataset(_series(40, variables=("t2m", "vil")), t_in=3, t_out=2, split="train")
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch["inputs"].shape == (4, 3, 2, 4, 5) and batch["targets"].shape == (4, 2, 2, 4, 5)
    assert batch["meta"]["index"].tolist() == [0, 1, 2, 3]
    assert batch["meta"]["calm_fraction"].dtype == torch.float64
