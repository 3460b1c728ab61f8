"""netCDF and zarr readers on files in WeatherBench / ERA5 layouts, and open_field_source's dispatch."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
netCDF4 = pytest.importorskip("netCDF4")

from dance3d.data.forecast.readers import open_field_source  # noqa: E402
from dance3d.data.forecast.windows import WindowedFieldDataset  # noqa: E402
from dance3d.errors import DataError  # noqa: E402

LAT = np.linspace(-84.375, 84.375, 8)  # WeatherBench 5.625 deg latitudes, 8 of its 32
LON = np.arange(16) * 5.625


def _weatherbench(steps: int = 30, *, lat="lat", lon="lon", time="time") -> xr.Dataset:
    rng = np.random.default_rng(2)
    shape = (steps, LAT.size, LON.size)
    coords = {time: np.datetime64("1979-01-01") + np.arange(steps) * np.timedelta64(6, "h"), lat: LAT, lon: LON}
    return xr.Dataset(
        {
            "t2m": ((time, lat, lon), 270 + rng.normal(size=shape).astype(np.float32), {"units": "K"}),
            "z": ((time, lat, lon), 5.4e4 + 100 * rng.normal(size=shape).astype(np.float32), {"units": "m**2 s**-2"}),
        },
        coords=coords,
    )


def test_weatherbench_netcdf(tmp_path):
    dataset = _weatherbench()
    dataset.to_netcdf(tmp_path / "2m_temperature_1979_5.625deg.nc")
    series = open_field_source(tmp_path / "2m_temperature_1979_5.625deg.nc", variables=["z", "t2m"])
    assert series.variables == ("z", "t2m") and series.units == ("m**2 s**-2", "K")
    assert series.values.shape == (30, 2, 8, 16) and series.values.dtype == np.float32
    np.testing.assert_array_equal(series.values[:, 1], dataset["t2m"].values)
    np.testing.assert_allclose(series.lat, LAT) and np.testing.assert_allclose(series.lon, LON)
    assert series.times[1] == np.datetime64("1979-01-01T06:00")
    assert open_field_source(tmp_path / "2m_temperature_1979_5.625deg.nc").variables == ("t2m", "z")


def test_era5_spelling_packed_shorts_and_masked_fill_become_nan(tmp_path):
    """ERA5 from the CDS: valid_time/latitude/longitude, int16 with scale_factor/add_offset, _FillValue."""
    path = tmp_path / "era5.nc"
    with netCDF4.Dataset(path, "w") as handle:
        for name, size in (("valid_time", 5), ("latitude", 4), ("longitude", 6)):
            handle.createDimension(name, size)
        handle.createVariable("valid_time", "i8", ("valid_time",))[:] = np.arange(5) * 3600
        handle["valid_time"].units = "seconds since 2020-01-01"
        handle.createVariable("latitude", "f8", ("latitude",))[:] = [90, 89.75, 89.5, 89.25]
        handle.createVariable("longitude", "f8", ("longitude",))[:] = np.arange(6) * 0.25
        sst = handle.createVariable("sst", "i2", ("valid_time", "latitude", "longitude"), fill_value=-32767)
        sst.scale_factor, sst.add_offset, sst.units = 0.01, 280.0, "K"
        values = np.ma.masked_array(280 + np.ones((5, 4, 6)), mask=np.zeros((5, 4, 6), bool))
        values.mask[:, 0, :2] = True  # land points
        sst[:] = values
    series = open_field_source(path)
    assert series.variables == ("sst",) and series.nan_counts() == {"sst": 10}
    np.testing.assert_allclose(series.values[0, 0, 1], 281.0, atol=0.01)
    assert series.lat[0] == 90 and series.times[4] == np.datetime64("2020-01-01T04:00")
    with pytest.raises(DataError, match=r"era5\.nc: 10 missing \(NaN or fill\) values"):
        WindowedFieldDataset(series, t_in=1, t_out=1, split="train", split_fractions=(1, 0, 0))
    filled = WindowedFieldDataset(series, t_in=1, t_out=1, split="train", split_fractions=(1, 0, 0), nan_policy="fill")
    assert np.isfinite(filled[0]["inputs"].numpy()).all()


def test_zarr_store(tmp_path):
    pytest.importorskip("zarr")
    dataset = _weatherbench(12, lat="latitude", lon="longitude")
    dataset.to_zarr(tmp_path / "era5.zarr", consolidated=False)
    series = open_field_source(tmp_path / "era5.zarr", variables=["t2m"])
    assert series.values.shape == (12, 1, 8, 16) and series.lat is not None
    np.testing.assert_array_equal(series.values[:, 0], dataset["t2m"].values)


def test_single_level_is_squeezed_and_many_levels_are_an_error(tmp_path):
    dataset = _weatherbench(6).expand_dims(level=[500]).transpose("time", "level", "lat", "lon")
    dataset.to_netcdf(tmp_path / "z500.nc")
    assert open_field_source(tmp_path / "z500.nc").values.shape == (6, 2, 8, 16)
    levels = xr.concat([_weatherbench(6).assign_coords(level=level) for level in (500, 850)], dim="level")
    levels.transpose("time", "level", "lat", "lon").to_netcdf(tmp_path / "levels.nc")
    with pytest.raises(DataError, match=r"levels\.nc: no variable on \(time, lat, lon\)"):
        open_field_source(tmp_path / "levels.nc")
    with pytest.raises(DataError, match=r"levels\.nc: variable 'z' has dimensions .*'level': 2.*select one level"):
        open_field_source(tmp_path / "levels.nc", variables=["z"])


def test_bad_netcdf_inputs_are_clear(tmp_path):
    _weatherbench(6).to_netcdf(tmp_path / "wb.nc")
    with pytest.raises(DataError, match=r"wb\.nc: no variable \['u10'\]; it has \['t2m', 'z'\]"):
        open_field_source(tmp_path / "wb.nc", variables=["u10"])
    xr.Dataset({"orography": (("lat", "lon"), np.zeros((8, 16)))}).to_netcdf(tmp_path / "static.nc")
    with pytest.raises(DataError, match=r"static\.nc: no variable on \(time, lat, lon\)"):
        open_field_source(tmp_path / "static.nc")
    with pytest.raises(DataError, match=r"static\.nc: variable 'orography' has dimensions"):
        open_field_source(tmp_path / "static.nc", variables=["orography"])
    (tmp_path / "broken.nc").write_bytes(b"CDF\x01garbage")
    with pytest.raises(DataError, match=r"broken\.nc: cannot be read as netCDF"):
        open_field_source(tmp_path / "broken.nc")
    with pytest.raises(DataError, match=r"too few time steps for t_in \+ t_out = 8 in the train split"):
        WindowedFieldDataset(open_field_source(tmp_path / "wb.nc"), t_in=4, t_out=4, split="train")


def test_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.nc: no such file"):
        open_field_source(tmp_path / "missing.nc")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: unknown field format \(suffix \.txt\)"):
        open_field_source(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not a zarr store"):
        open_field_source(tmp_path / "folder")
