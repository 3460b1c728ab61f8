"""PP reader on files in the Met Office PP layout (64-word big-endian header, unpacked reals, extra data)."""

from __future__ import annotations

import numpy as np
import pytest

from dance3d.data.forecast.readers import open_field_source, read_pp
from dance3d.errors import DataError

MISSING = -1.0737418e9


def _record(payload: bytes) -> bytes:
    length = np.array([len(payload)], ">i4").tobytes()
    return length + payload + length


def _field(month: int, values: np.ndarray, latitudes: np.ndarray, *, packing: int = 0) -> bytes:
    rows, columns = values.shape
    ints = np.zeros(45, ">i4")
    ints[:6] = [1890, month, 1, 0, 0, 1]
    ints[17], ints[18], ints[19], ints[20], ints[38] = rows, columns, rows + 1, packing, 1
    reals = np.zeros(19, ">f4")
    reals[13:19] = [-90.0, 0.0, -0.5, 1.0, MISSING, 1.0]  # BZY, BDY (0: rows in extra data), BZX, BDX, BMDI, BMKS
    extra = np.array([rows * 1000 + 2], ">i4").tobytes() + latitudes.astype(">f4").tobytes()
    data = values.astype(">f4").tobytes() + extra
    return _record(ints.tobytes() + reals.tobytes()) + _record(data)


def test_monthly_files_become_one_series(tmp_path):
    rng = np.random.default_rng(4)
    latitudes = np.array([-60.0, -10.0, 0.0, 10.0, 60.0])
    fields = {month: rng.normal(size=(5, 8)).astype(np.float32) for month in (1, 2, 3)}
    fields[2][0, 0] = MISSING
    paths = []
    for month in (3, 1, 2):  # out of order on purpose: the series is ordered by validity time
        path = tmp_path / f"northward_sea_ice_velocity.1890.{month:02d}.01.00.00.pp"
        path.write_bytes(_field(month, fields[month], latitudes))
        paths.append(path)
    series = read_pp(paths, variable="northward_sea_ice_velocity", units="m s-1")
    assert series.values.shape == (3, 1, 5, 8)
    np.testing.assert_array_equal(series.values[2, 0], fields[3])
    assert np.isnan(series.values[1, 0, 0, 0]) and series.nan_counts() == {"northward_sea_ice_velocity": 1}
    np.testing.assert_allclose(series.lat, latitudes) and np.testing.assert_allclose(series.lon, np.arange(8) + 0.5)
    assert series.times[1] == np.datetime64("1890-02-01T00:00")
    single = open_field_source(paths[1])
    assert single.variables == ("northward_sea_ice_velocity.1890.01.01.00.00",) and single.values.shape == (1, 1, 5, 8)


def test_bad_pp_inputs_are_clear(tmp_path):
    values, latitudes = np.zeros((2, 3), np.float32), np.array([0.0, 1.0])
    (tmp_path / "packed.pp").write_bytes(_field(1, values, latitudes, packing=1))
    with pytest.raises(DataError, match=r"packed\.pp: packed or non-real PP field \(LBPACK=1\)"):
        open_field_source(tmp_path / "packed.pp")
    (tmp_path / "cut.pp").write_bytes(_field(1, values, latitudes)[:-10])
    with pytest.raises(DataError, match=r"cut\.pp: not a PP file, or truncated"):
        open_field_source(tmp_path / "cut.pp")
