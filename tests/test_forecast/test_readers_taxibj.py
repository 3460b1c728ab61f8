"""TaxiBJ reader on files in TaxiBJ's layout: 'data' N x 2 x 32 x 32 and 'date' byte strings YYYYMMDD + slot."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from dance3d.data.forecast.readers import open_field_source  # noqa: E402
from dance3d.data.forecast.windows import WindowedFieldDataset  # noqa: E402
from dance3d.errors import DataError  # noqa: E402


def _dates(days=("20130701", "20130702"), skip=(("20130702", 5),)) -> list[bytes]:
    return [f"{day}{slot:02d}".encode() for day in days for slot in range(1, 49) if (day, slot) not in skip]


def _write(path, dates, *, shape=None):
    rng = np.random.default_rng(1)
    data = rng.poisson(20.0, size=shape or (len(dates), 2, 32, 32)).astype(np.float64)
    with h5py.File(path, "w") as handle:
        handle["data"] = data
        handle["date"] = np.array(dates)
    return data


def test_reads_flows_and_half_hour_slots(tmp_path):
    dates = _dates()
    data = _write(tmp_path / "BJ13_M32x32_T30_InOut.h5", dates)
    series = open_field_source(tmp_path / "BJ13_M32x32_T30_InOut.h5")
    assert series.variables == ("inflow", "outflow") and series.values.shape == (95, 2, 32, 32)
    np.testing.assert_array_equal(series.values, data.astype(np.float32))
    assert series.times[0] == np.datetime64("2013-07-01T00:00")
    assert series.times[47] == np.datetime64("2013-07-01T23:30")
    assert series.times[48] == np.datetime64("2013-07-02T00:00")
    assert series.lat is None


def test_windows_skip_the_missing_slot(tmp_path):
    _write(tmp_path / "bj.h5", _dates())
    data = WindowedFieldDataset(open_field_source(tmp_path / "bj.h5"), t_in=4, t_out=4, split="train")
    missing_at = 48 + 4  # 2013-07-02 slot 05 is absent: steps 51 -> 52 jump an hour
    assert all(not (start < missing_at < start + 8) for _, start in data.windows)
    assert (0, missing_at) in data.windows and (0, missing_at - 8) in data.windows


def test_bad_taxibj_inputs_are_clear(tmp_path):
    with h5py.File(tmp_path / "nodate.h5", "w") as handle:
        handle["data"] = np.zeros((4, 2, 32, 32))
    with pytest.raises(DataError, match=r"nodate\.h5: no dataset 'date'"):
        open_field_source(tmp_path / "nodate.h5")
    _write(tmp_path / "dims.h5", _dates(days=("20130701",), skip=()), shape=(48, 32, 32, 2))
    with pytest.raises(DataError, match=r"dims\.h5: 'data' has shape \(48, 32, 32, 2\); expected N x 2 x H x W"):
        open_field_source(tmp_path / "dims.h5")
    _write(tmp_path / "slot.h5", [b"2013070101", b"2013070149"])
    with pytest.raises(DataError, match=r"slot\.h5: date '2013070149' is not YYYYMMDD"):
        open_field_source(tmp_path / "slot.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["flows"] = np.zeros((4, 2, 32, 32))
    with pytest.raises(DataError, match=r"neither SEVIR .* nor TaxiBJ .*\['flows'\]"):
        open_field_source(tmp_path / "other.h5")


def test_too_few_steps_for_the_window_names_the_file(tmp_path):
    _write(tmp_path / "short.h5", _dates(days=("20130701",), skip=()))
    series = open_field_source(tmp_path / "short.h5")
    with pytest.raises(ValueError, match=r"short\.h5: too few time steps for t_in \+ t_out = 12 in the val split"):
        WindowedFieldDataset(series, t_in=6, t_out=6, split="val")
