"""SEVIR reader on files written in SEVIR's layout: CATALOG.csv + data/<type>/<year>/*.h5 (N x H x W x 49 uint8)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from dance3d.data.forecast.readers import open_field_source, read_sevir_events  # noqa: E402
from dance3d.data.forecast.windows import WindowedFieldDataset  # noqa: E402
from dance3d.errors import DataError  # noqa: E402

FILE_NAME = "vil/2019/SEVIR_VIL_STORMEVENTS_2019_0101_0630.h5"
OFFSETS = ":".join(str(minute) for minute in range(-120, 125, 5))
COLUMNS = [
    "id", "file_name", "file_index", "img_type", "time_utc", "minute_offsets", "episode_id", "event_id",
    "event_type", "llcrnrlat", "llcrnrlon", "urcrnrlat", "urcrnrlon", "proj", "size_x", "size_y",
    "height_m", "width_m", "data_min", "data_max", "pct_missing",
]  # fmt: skip
TIMES = ["2019-05-01 18:00:00", "2019-05-03 02:35:00", "2019-06-20 21:10:00"]


def _write_sevir(root: Path, *, events: int = 3, size: int = 24, frames: int = 49) -> np.ndarray:
    rng = np.random.default_rng(0)
    vil = rng.integers(0, 256, size=(events, size, size, frames), dtype=np.uint8)
    vil[:, : size // 2] = 0  # half of every frame without precipitation
    path = root / "data" / FILE_NAME
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        handle["id"] = np.array([f"S{800 + i}".encode() for i in range(events)])
        handle["vil"] = vil
    with open(root / "CATALOG.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(events):
            row = dict.fromkeys(COLUMNS, "0")
            row.update(id=f"S{800 + i}", file_name=FILE_NAME, file_index=i, img_type="vil", time_utc=TIMES[i])
            row.update(minute_offsets=OFFSETS, event_type="Thunderstorm Wind", proj="+proj=laea")
            writer.writerow(row)
            other = {**row, "img_type": "ir069", "file_name": "ir069/2019/SEVIR_IR069_2019_0101_0630.h5"}
            writer.writerow(other)
    return vil


def test_each_catalog_event_is_a_49_frame_series(tmp_path):
    vil = _write_sevir(tmp_path)
    events = read_sevir_events(tmp_path / "CATALOG.csv")
    assert [event.source.rsplit("#", 1)[1] for event in events] == ["S800", "S801", "S802"]
    event = events[1]
    assert event.values.shape == (49, 1, 24, 24) and event.variables == ("vil",)
    np.testing.assert_array_equal(event.values[:, 0], vil[1].transpose(2, 0, 1).astype(np.float32))
    assert event.times[0] == np.datetime64("2019-05-03T00:35:00")
    assert event.times[-1] == np.datetime64("2019-05-03T04:35:00")
    assert event.lat is None and event.lon is None


def test_select_events_by_id_and_limit(tmp_path):
    _write_sevir(tmp_path)
    chosen = read_sevir_events(tmp_path / "CATALOG.csv", event_ids=["S802", "S800"])
    assert [event.source.rsplit("#", 1)[1] for event in chosen] == ["S800", "S802"]  # catalog order
    assert len(read_sevir_events(tmp_path / "CATALOG.csv", limit=1)) == 1
    with pytest.raises(DataError, match=r"no vil event with id \['S999'\]"):
        read_sevir_events(tmp_path / "CATALOG.csv", event_ids=["S999"])


def test_open_field_source_finds_the_catalog_and_windows_stay_in_one_event(tmp_path):
    _write_sevir(tmp_path)
    series = open_field_source(tmp_path / "data" / FILE_NAME)
    assert series.values.shape == (3 * 49, 1, 24, 24)
    data = WindowedFieldDataset(series, t_in=7, t_out=6, split="train", split_fractions=(1.0, 0.0, 0.0))
    assert len(data) == 3 * (49 - 13 + 1)
    assert all(start % 49 <= 49 - 13 for _, start in data.windows)
    calm = data[0]["meta"]["calm_fraction"]
    assert 0.5 < calm < 0.6  # the dry half plus the few wet pixels below VIL 16
    events = WindowedFieldDataset(read_sevir_events(tmp_path / "CATALOG.csv"), t_in=7, t_out=6, split="test")
    assert {index for index, _ in events.windows} == {2}


def test_bad_sevir_inputs_are_clear(tmp_path):
    _write_sevir(tmp_path)
    lone = tmp_path / "elsewhere" / "a" / "b" / "c" / "d" / "SEVIR_VIL.h5"
    lone.parent.mkdir(parents=True)
    with h5py.File(lone, "w") as handle:
        handle["vil"] = np.zeros((1, 8, 8, 49), np.uint8)
    with pytest.raises(DataError, match="needs its CATALOG.csv"):
        open_field_source(lone)
    with h5py.File(tmp_path / "data" / FILE_NAME, "a") as handle:
        del handle["vil"]
        handle["vil"] = np.zeros((3, 8, 49), np.uint8)
    with pytest.raises(DataError, match=r"'vil' has shape \(3, 8, 49\); expected N x H x W x T"):
        read_sevir_events(tmp_path / "CATALOG.csv")
    (tmp_path / "bad.csv").write_text("id,file_name\nS1,x.h5\n")
    with pytest.raises(DataError, match=r"bad\.csv: catalog lacks columns"):
        read_sevir_events(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="no event of image type 'vis'"):
        read_sevir_events(tmp_path / "CATALOG.csv", img_type="vis")


def test_catalog_and_file_disagreeing_on_ids_is_an_error(tmp_path):
    _write_sevir(tmp_path)
    with h5py.File(tmp_path / "data" / FILE_NAME, "a") as handle:
        handle["id"][0] = b"S999"
    with pytest.raises(DataError, match="catalog puts event S800 at index 0, the file has S999"):
        read_sevir_events(tmp_path / "CATALOG.csv")
