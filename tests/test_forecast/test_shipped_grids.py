"""Shipped real grids: installed ones load with their documented sizes and window; missing ones say what to install."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dance3d.data.forecast.readers import SHIPPED_GRIDS, MissingPackageError, load_shipped_grid
from dance3d.data.forecast.readers.shipped import debian_doc_file
from dance3d.data.forecast.windows import WindowedFieldDataset
from dance3d.errors import DataError

# name -> (T, C, H, W), variables, lat-lon grid; as docs/forecast-data.md states them
EXPECTED = {
    "iris-air-temp": ((240, 1, 37, 49), ("air_temperature",), True),
    "iris-air-temp-e1": ((240, 1, 37, 49), ("air_temperature",), True),
    "iris-sst": ((54, 1, 18, 432), ("surface_temperature",), True),
    "iris-sea-ice": ((120, 1, 215, 360), ("northward_sea_ice_velocity",), True),
    "hvsampledata-air": ((20, 1, 25, 53), ("air",), True),
    "safrica-grib": ((25, 3, 140, 210), ("pwat", "btmp", "prate"), False),
}


def test_every_shipped_grid_is_documented_here():
    assert set(SHIPPED_GRIDS) == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_grid_loads_and_windows(name):
    try:
        series = SHIPPED_GRIDS[name]()
    except MissingPackageError as error:
        pytest.skip(str(error))
    shape, variables, on_lat_lon = EXPECTED[name]
    assert series.values.shape == shape and series.variables == variables
    assert series.source == name and (series.lat is not None) == on_lat_lon
    assert np.isfinite(series.values).mean() > 0.7 and np.all(np.diff(series.times) > np.timedelta64(0))
    for split in ("train", "val", "test"):
        data = WindowedFieldDataset(series, t_in=2, t_out=1, split=split, nan_policy="fill")
        sample = data[len(data) - 1]
        assert sample["inputs"].shape == (2, *shape[1:]) and sample["targets"].shape == (1, *shape[1:])
        assert 0.0 <= sample["meta"]["calm_fraction"] <= 1.0
        assert np.isfinite(sample["inputs"].numpy()).all()


def test_unknown_grid_name():
    with pytest.raises(DataError, match="unknown shipped grid 'iris'; choose one of"):
        load_shipped_grid("iris")


def test_missing_python_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "iris_sample_data", None)  # makes the import fail
    with pytest.raises(MissingPackageError, match="pip install iris-sample-data"):
        load_shipped_grid("iris-sst")


def test_missing_debian_package_says_what_to_install():
    with pytest.raises(MissingPackageError, match="no-such-doc-package-dance3d"):
        debian_doc_file("no-such-doc-package-dance3d", "safrica.grib2")


def test_describe_row_reports_the_series():
    from dance3d.data.forecast.readers.__main__ import describe
    from dance3d.data.forecast.series import FieldSeries

    values = np.zeros((20, 1, 3, 4), np.float32)
    values[5, 0, 0, 0] = np.nan
    times = np.datetime64("2014-02-24T00") + np.arange(20) * np.timedelta64(6, "h")
    row = describe("demo", FieldSeries(values, ("air",), times, np.zeros(3), np.zeros(4), "demo", ("K",)))
    assert row[:4] == ["demo", "20x1x3x4", "air", "K"]
    assert row[5] == "6 h" and row[6] == "0.4" and row[7] == "14/3/3" and row[8] == "lat-lon"
    assert row[9] == "1.00"  # a constant field never changes
