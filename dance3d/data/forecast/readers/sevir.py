"""SEVIR storm events: HDF5 files of ``N x H x W x 49`` uint8 frames per image type, selected by the catalog.

Layout (as distributed): ``CATALOG.csv`` with columns ``id, file_name, file_index, img_type,
time_utc, minute_offsets, ...`` beside a ``data/`` folder; ``file_name`` is relative to
``data/`` (e.g. ``vil/2019/SEVIR_VIL_STORMEVENTS_2019_0101_0630.h5``), and each file holds the
dataset named by the image type (``vil``: ``N x 384 x 384 x 49``) and ``id`` (event ids).
Values stay in the file's digital scale (VIL 0-255, the scale of the CSI thresholds 16-219).
Each event is one 49-frame series, frames at ``time_utc`` + ``minute_offsets`` (5-minute steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dance3d.data.forecast.readers.optional import require
from dance3d.data.forecast.series import FieldDataError, FieldSeries

CATALOG_NAME = "CATALOG.csv"
CATALOG_COLUMNS = ("id", "file_name", "file_index", "img_type", "time_utc")
IMAGE_TYPES = ("vil", "vis", "ir069", "ir107", "lght")
DIGITAL_UNITS = {"vil": "digital VIL (0-255)"}
FRAME_MINUTES = 5


def read_sevir_events(
    catalog: str | Path,
    *,
    data_dir: str | Path | None = None,
    img_type: str = "vil",
    event_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[FieldSeries]:
    """One ``FieldSeries`` per catalog event of ``img_type`` (default all, in catalog order)."""
    rows = _catalog_rows(Path(catalog), img_type)
    if event_ids is not None:
        unknown = sorted(set(event_ids) - set(rows["id"]))
        if unknown:
            raise FieldDataError(f"{catalog}: no {img_type} event with id {unknown[:5]}")
        rows = rows[rows["id"].isin(list(event_ids))]
    if limit is not None:
        rows = rows.iloc[:limit]
    root = Path(data_dir) if data_dir is not None else Path(catalog).parent / "data"
    events = []
    for file_name, group in rows.groupby("file_name", sort=False):
        events.extend(_read_events(root / str(file_name), group, img_type))
    order = {event_id: position for position, event_id in enumerate(rows["id"])}
    return sorted(events, key=lambda event: order[event.source.rsplit("#", 1)[1]])


def read_sevir_file(path: str | Path, *, img_type: str | None = None) -> FieldSeries:
    """All events of one SEVIR file back to back in file order, timed by the ``CATALOG.csv`` above it.

    Events follow each other in the series; their time stamps jump between events, so windows
    (``WindowedFieldDataset``) never mix two events.
    """
    path = Path(path)
    h5py = require("h5py", install="pip install h5py", purpose="reading SEVIR HDF5")
    with h5py.File(path, "r") as handle:
        types = [name for name in IMAGE_TYPES if name in handle]
    if img_type is None:
        if not types:
            raise FieldDataError(f"{path}: no SEVIR image dataset ({', '.join(IMAGE_TYPES)}) in the file")
        img_type = types[0]
    catalog = find_catalog(path)
    rows = _catalog_rows(catalog, img_type)
    rows = rows[rows["file_name"].map(lambda name: Path(str(name)).name == path.name)]
    if rows.empty:
        raise FieldDataError(f"{path}: {catalog} lists no {img_type} event in this file")
    events = _read_events(path, rows.sort_values("file_index"), img_type)
    return FieldSeries(
        values=np.concatenate([event.values for event in events]),
        variables=(img_type,),
        times=np.concatenate([event.times for event in events]),
        lat=None,
        lon=None,
        source=str(path),
        units=events[0].units,
    )


def find_catalog(path: Path, *, levels: int = 4) -> Path:
    """The ``CATALOG.csv`` in the file's folder or one of the ``levels`` folders above it."""
    for folder in list(path.resolve().parents)[:levels]:
        if (folder / CATALOG_NAME).is_file():
            return folder / CATALOG_NAME
    raise FieldDataError(
        f"{path}: a SEVIR file needs its {CATALOG_NAME} (event times and ids), not found in the file's folder "
        f"or {levels - 1} above it; use dance3d.data.forecast.readers.sevir.read_sevir_events(catalog, ...)"
    )


def _catalog_rows(catalog: Path, img_type: str) -> pd.DataFrame:
    if not catalog.is_file():
        raise FieldDataError(f"{catalog}: SEVIR catalog not found")
    try:
        table = pd.read_csv(catalog, low_memory=False)
    except (OSError, ValueError) as error:
        raise FieldDataError(f"{catalog}: cannot be read as a CSV catalog ({error})") from error
    missing = [column for column in CATALOG_COLUMNS if column not in table.columns]
    if missing:
        raise FieldDataError(f"{catalog}: catalog lacks columns {missing}; SEVIR's has {list(CATALOG_COLUMNS)}")
    rows = table[table["img_type"] == img_type]
    if rows.empty:
        raise FieldDataError(f"{catalog}: no event of image type {img_type!r}; it has {sorted(set(table['img_type']))}")
    return rows.astype({"id": str})


def _read_events(path: Path, rows: pd.DataFrame, img_type: str) -> list[FieldSeries]:
    h5py = require("h5py", install="pip install h5py", purpose="reading SEVIR HDF5")
    if not path.is_file():
        raise FieldDataError(f"{path}: SEVIR file named by the catalog not found")
    with h5py.File(path, "r") as handle:
        if img_type not in handle:
            raise FieldDataError(f"{path}: no dataset {img_type!r}; it has {list(handle)}")
        frames = handle[img_type]
        if frames.ndim != 4:
            raise FieldDataError(f"{path}: {img_type!r} has shape {frames.shape}; expected N x H x W x T")
        ids = [_text(value) for value in handle["id"][:]] if "id" in handle else None
        events = []
        for row in rows.itertuples(index=False):
            index = int(row.file_index)
            if not 0 <= index < frames.shape[0]:
                raise FieldDataError(
                    f"{path}: catalog event {row.id} is at index {index}, but the file has {frames.shape[0]} events"
                )
            if ids is not None and ids[index] != row.id:
                raise FieldDataError(f"{path}: catalog puts event {row.id} at index {index}, the file has {ids[index]}")
            values = np.asarray(frames[index], dtype=np.float32).transpose(2, 0, 1)[:, None]
            events.append(
                FieldSeries(
                    values=np.ascontiguousarray(values),
                    variables=(img_type,),
                    times=_frame_times(row, values.shape[0], path),
                    lat=None,
                    lon=None,
                    source=f"{path}#{row.id}",
                    units=(DIGITAL_UNITS.get(img_type, ""),),
                )
            )
    return events


def _frame_times(row: object, count: int, path: Path) -> np.ndarray:
    start = np.datetime64(pd.Timestamp(row.time_utc).tz_localize(None), "s")
    offsets_text = getattr(row, "minute_offsets", None)
    if isinstance(offsets_text, str) and offsets_text:
        offsets = np.array([int(value) for value in offsets_text.split(":")])
        if offsets.size != count:
            raise FieldDataError(f"{path}: event {row.id} has {count} frames but {offsets.size} minute_offsets")
    else:
        offsets = np.arange(count) * FRAME_MINUTES
    return start + offsets.astype("timedelta64[m]")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
