"""GRIB2 reader on files written with ecCodes: regular lat-lon grid, several variables and lead times, bitmaps."""

from __future__ import annotations

import numpy as np
import pytest

eccodes = pytest.importorskip("eccodes")

from dance3d.data.forecast.readers import open_field_source  # noqa: E402
from dance3d.errors import DataError  # noqa: E402

PARAMETERS = {"t": (0, 0, 0), "prate": (0, 1, 7)}  # shortName -> discipline, category, number


def _message(short_name: str, step_h: int, values: np.ndarray, *, missing: bool = False):
    message = eccodes.codes_grib_new_from_samples("GRIB2")
    discipline, category, number = PARAMETERS[short_name]
    keys = {
        "gridType": "regular_ll", "Ni": 6, "Nj": 4, "jScansPositively": 0,
        "latitudeOfFirstGridPointInDegrees": 60.0, "latitudeOfLastGridPointInDegrees": 30.0,
        "longitudeOfFirstGridPointInDegrees": 0.0, "longitudeOfLastGridPointInDegrees": 50.0,
        "iDirectionIncrementInDegrees": 10.0, "jDirectionIncrementInDegrees": 10.0,
        "dataDate": 20100308, "dataTime": 1200, "stepUnits": 1, "forecastTime": step_h,
        "discipline": discipline, "parameterCategory": category, "parameterNumber": number,
        "typeOfFirstFixedSurface": 1, "packingType": "grid_ieee",
    }  # fmt: skip
    for key, value in keys.items():
        eccodes.codes_set(message, key, value)
    if missing:
        eccodes.codes_set(message, "bitmapPresent", 1)
        eccodes.codes_set(message, "missingValue", 9999.0)
    eccodes.codes_set_values(message, values.ravel().astype(np.float64))
    return message


def _write(path, fields: dict[tuple[str, int], np.ndarray], *, missing: bool = False) -> None:
    with open(path, "wb") as handle:
        for (name, step), values in fields.items():
            message = _message(name, step, values, missing=missing)
            eccodes.codes_write(message, handle)
            eccodes.codes_release(message)


def _fields(steps=(0, 3, 6, 9)) -> dict[tuple[str, int], np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        (name, step): (280 + rng.normal(size=(4, 6))) if name == "t" else rng.exponential(1e-4, size=(4, 6))
        for step in steps
        for name in PARAMETERS
    }


def test_lead_times_become_frames_and_short_names_channels(tmp_path):
    fields = _fields()
    _write(tmp_path / "forecast.grib2", fields)
    series = open_field_source(tmp_path / "forecast.grib2")
    assert series.variables == ("t", "prate") and series.values.shape == (4, 2, 4, 6)
    assert series.units == ("K", "kg m**-2 s**-1")
    np.testing.assert_allclose(series.values[2, 0], fields[("t", 6)], rtol=1e-6)
    np.testing.assert_allclose(series.values[3, 1], fields[("prate", 9)], rtol=1e-6)
    assert series.times[0] == np.datetime64("2010-03-08T12:00") and series.times[3] == np.datetime64("2010-03-08T21:00")
    np.testing.assert_allclose(series.lat, [60, 50, 40, 30]) and np.testing.assert_allclose(
        series.lon, np.arange(6) * 10
    )
    assert open_field_source(tmp_path / "forecast.grib2", variables=["prate"]).variables == ("prate",)


def test_bitmap_missing_points_become_nan(tmp_path):
    fields = _fields(steps=(0, 3))
    for values in fields.values():
        values[0, :3] = 9999.0
    _write(tmp_path / "holes.grb2", fields, missing=True)
    series = open_field_source(tmp_path / "holes.grb2")
    assert series.nan_counts() == {"t": 6, "prate": 6}
    assert np.isfinite(series.values[:, :, 1:]).all()


def test_bad_grib_inputs_are_clear(tmp_path):
    fields = _fields()
    del fields[("prate", 6)]
    _write(tmp_path / "gap.grib2", fields)
    with pytest.raises(DataError, match=r"gap\.grib2: variable 'prate' is missing at 1 times"):
        open_field_source(tmp_path / "gap.grib2")
    with pytest.raises(DataError, match=r"gap\.grib2: no GRIB messages of variable \['tp'\]; it has \['t', 'prate'\]"):
        open_field_source(tmp_path / "gap.grib2", variables=["tp"])
    (tmp_path / "junk.grib2").write_bytes(b"not grib at all")
    with pytest.raises(DataError, match=r"junk\.grib2: no GRIB message in the file"):
        open_field_source(tmp_path / "junk.grib2")
