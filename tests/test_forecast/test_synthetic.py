"""Synthetic forecasting datasets: determinism, shapes, calm fraction, normalisation, bad settings."""

import numpy as np
import pytest
import torch

from dance3d.config import load_config
from dance3d.data.forecast.config import ForecastDataConfig, is_forecast_source
from dance3d.data.forecast.synthetic import SyntheticForecast, default_config
from dance3d.data.forecast.synthetic.weather import latitudes
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError

SMALL = {"num_train": 16, "num_val": 8, "num_test": 8}


@pytest.mark.parametrize("name", ["storms", "traffic", "weather"])
def test_samples_are_deterministic_by_seed_split_and_index(name):
    config = default_config(name, **SMALL)
    a, b = SyntheticForecast("test", config)[3], SyntheticForecast("test", config)[3]
    assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["targets"], b["targets"])
    assert a["meta"] == b["meta"]
    other_index = SyntheticForecast("test", config)[4]
    other_split = SyntheticForecast("val", config)[3]
    other_seed = SyntheticForecast("test", default_config(name, seed=1, **SMALL))[3]
    for other in (other_index, other_split, other_seed):
        assert not torch.equal(a["targets"], other["targets"])


@pytest.mark.parametrize(
    ("name", "shape_in", "shape_out"),
    [("storms", (6, 1, 32, 32), (6, 1, 32, 32)), ("traffic", (6, 2, 32, 32), (4, 2, 32, 32)),
     ("weather", (4, 2, 32, 64), (4, 2, 32, 64))],
)  # fmt: skip
def test_sample_shapes_and_metadata(name, shape_in, shape_out):
    dataset = SyntheticForecast("train", default_config(name, **SMALL))
    sample = dataset[0]
    assert tuple(sample["inputs"].shape) == shape_in and tuple(sample["targets"].shape) == shape_out
    assert sample["inputs"].dtype == torch.float32
    assert 0.0 <= sample["meta"]["calm_fraction"] <= 1.0
    assert len(dataset.variables) == shape_in[1] == len(dataset.mean) == len(dataset.std)
    assert (dataset.lat is not None) == (name == "weather")


def test_storms_are_vil_levels_with_a_widely_varying_calm_fraction():
    dataset = SyntheticForecast("train", default_config("storms", num_train=64, num_val=8, num_test=8))
    raw = [dataset.raw(i) for i in range(64)]
    values = np.stack([v for v, _ in raw])
    assert values.min() == 0.0 and values.max() <= 255.0 and values.max() > 100.0
    assert np.array_equal(values, np.round(values))  # whole VIL levels
    calm = np.array([c for _, c in raw])
    assert np.percentile(calm, 90) - np.percentile(calm, 10) > 0.3
    # a sample's calm fraction is what its frames show: a clear-sky sample is entirely calm
    for v, c in raw:
        if not v.any():
            assert c == 1.0


def test_normalisation_uses_training_statistics_for_every_split():
    config = default_config("traffic", **SMALL)
    train, test = SyntheticForecast("train", config), SyntheticForecast("test", config)
    np.testing.assert_array_equal(train.mean, test.mean)
    values, _ = train.raw(2)
    sample = train[2]
    expected = (values[: config.t_in] - train.mean[None, :, None, None]) / train.std[None, :, None, None]
    np.testing.assert_allclose(sample["inputs"].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_weather_latitudes_run_pole_to_pole_at_cell_centres():
    lat = latitudes(32)
    assert lat[0] == pytest.approx(87.1875) and lat[-1] == pytest.approx(-87.1875)
    assert np.all(np.diff(lat) < 0)


def test_data_registry_builds_forecast_data_with_overrides():
    data = DataConfig(source="storms", forecast=ForecastDataConfig(t_in=3, t_out=2, height=20, width=24, **SMALL))
    sample = build_dataset(data, "val")[0]
    assert tuple(sample["inputs"].shape) == (3, 1, 20, 24) and tuple(sample["targets"].shape) == (2, 1, 20, 24)
    assert len(build_dataset(data, "val")) == 8


def test_bad_settings_give_clear_errors():
    with pytest.raises(ConfigError, match="t_in must be >= 1"):
        load_config(DataConfig, overrides=["source=storms", "forecast.t_in=0"])
    with pytest.raises(ConfigError, match="height and width must be >= 8"):
        build_dataset(DataConfig(source="storms", forecast=ForecastDataConfig(height=4)), "train")
    with pytest.raises(ValueError, match="unknown synthetic forecasting dataset 'rain'"):
        default_config("rain")
    with pytest.raises(IndexError, match="out of range"):
        SyntheticForecast("test", default_config("storms", **SMALL)).raw(8)


def test_forecast_sources_are_told_apart_from_video_folders():
    for source in ("storms", "traffic", "weather", "grid:iris-sst", "x/era5.nc", "a.h5", "b.grib2", "c.zarr/"):
        assert is_forecast_source(source)
    for source in ("moving-digits", "videos/", "/data/kinetics"):
        assert not is_forecast_source(source)
