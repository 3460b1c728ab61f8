"""Met Office PP fields (unpacked 32-bit reals), as in ``iris-sample-data``'s monthly sea-ice files.

A PP file is a sequence of Fortran records: a 64-word big-endian header (45 integers, 19 reals),
then the data (``LBROW x LBNPT`` values, plus ``LBEXT`` words of extra data such as the row
latitudes). Packed fields (``LBPACK != 0``) need a full PP library (e.g. Iris) and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dance3d.data.forecast.series import FieldDataError, FieldSeries

HEADER_WORDS = 64
# 0-based header positions (UMDP F3 names in comments)
YEAR, MONTH, DAY, HOUR, MINUTE = 0, 1, 2, 3, 4  # LBYR, LBMON, LBDAT, LBHR, LBMIN (validity time)
ROWS, COLUMNS, EXTRA, PACKING, DATA_TYPE = 17, 18, 19, 20, 38  # LBROW, LBNPT, LBEXT, LBPACK, LBUSER1
FIRST_LAT, LAT_STEP, FIRST_LON, LON_STEP, MISSING = 13, 14, 15, 16, 17  # BZY, BDY, BZX, BDX, BMDI (reals)
EXTRA_LATITUDES = 2  # extra-data vector type holding the row latitudes


@dataclass(frozen=True)
class _Field:
    time: np.datetime64
    values: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def read_pp(paths: Sequence[str | Path], *, variable: str, units: str = "", source: str | None = None) -> FieldSeries:
    """One variable from the fields of ``paths`` (one or more per file), ordered by validity time."""
    fields = [field for path in paths for field in _read_fields(Path(path))]
    label = source or (str(paths[0]) if len(paths) == 1 else f"{Path(paths[0]).parent} ({len(paths)} PP files)")
    if not fields:
        raise FieldDataError(f"{label}: no PP field")
    fields.sort(key=lambda field: field.time)
    shape = fields[0].values.shape
    for field in fields:
        if field.values.shape != shape or not np.array_equal(field.lat, fields[0].lat):
            raise FieldDataError(
                f"{label}: the field at {field.time} is on another grid ({field.values.shape} vs {shape})"
            )
    return FieldSeries(
        values=np.stack([field.values for field in fields])[:, None].astype(np.float32),
        variables=(variable,),
        times=np.array([field.time for field in fields], dtype="datetime64[s]"),
        lat=fields[0].lat,
        lon=fields[0].lon,
        source=label,
        units=(units,) if units else (),
    )


def _read_fields(path: Path) -> list[_Field]:
    if not path.is_file():
        raise FieldDataError(f"{path}: PP file not found")
    raw = path.read_bytes()
    fields, offset = [], 0
    while offset < len(raw):
        header, offset = _record(raw, offset, path)
        if header.size != HEADER_WORDS * 4:
            raise FieldDataError(f"{path}: a PP header has {header.size} bytes, expected {HEADER_WORDS * 4}")
        ints = np.frombuffer(header[: 45 * 4], ">i4")
        reals = np.frombuffer(header[45 * 4 :], ">f4")
        data, offset = _record(raw, offset, path)
        fields.append(_field(ints, reals, data, path))
    return fields


def _record(raw: bytes, offset: int, path: Path) -> tuple[np.ndarray, int]:
    """One Fortran unformatted record: 4-byte length, payload, the same length again."""
    if offset + 4 > len(raw):
        raise FieldDataError(f"{path}: truncated PP file at byte {offset}")
    length = int(np.frombuffer(raw[offset : offset + 4], ">i4")[0])
    end = offset + 4 + length
    if length < 0 or end + 4 > len(raw) or raw[end : end + 4] != raw[offset : offset + 4]:
        raise FieldDataError(f"{path}: not a PP file, or truncated (bad record length at byte {offset})")
    return np.frombuffer(raw[offset + 4 : end], np.uint8), end + 4


def _field(ints: np.ndarray, reals: np.ndarray, data: np.ndarray, path: Path) -> _Field:
    rows, columns, extra = int(ints[ROWS]), int(ints[COLUMNS]), int(ints[EXTRA])
    if ints[PACKING] != 0 or ints[DATA_TYPE] != 1:
        raise FieldDataError(f"{path}: packed or non-real PP field (LBPACK={ints[PACKING]}); read it with Iris")
    if data.size != 4 * (rows * columns + extra):
        raise FieldDataError(f"{path}: PP data record has {data.size} bytes for {rows}x{columns}+{extra} words")
    values = np.frombuffer(data[: 4 * rows * columns].tobytes(), ">f4").reshape(rows, columns).astype(np.float32)
    values[values == reals[MISSING]] = np.nan
    lat = _extra_latitudes(data[4 * rows * columns :], rows)
    if lat is None:
        lat = reals[FIRST_LAT] + reals[LAT_STEP] * np.arange(1, rows + 1)
    lon = reals[FIRST_LON] + reals[LON_STEP] * np.arange(1, columns + 1)
    time = np.datetime64(f"{ints[YEAR]:04d}-{ints[MONTH]:02d}-{ints[DAY]:02d}T{ints[HOUR]:02d}:{ints[MINUTE]:02d}", "s")
    return _Field(time, values, np.asarray(lat, np.float64), np.asarray(lon, np.float64))


def _extra_latitudes(extra: np.ndarray, rows: int) -> np.ndarray | None:
    words = np.frombuffer(extra.tobytes(), ">i4")
    reals = np.frombuffer(extra.tobytes(), ">f4")
    position = 0
    while position < words.size:
        count, kind = divmod(int(words[position]), 1000)
        if count <= 0:
            return None  # not a vector header: stop rather than guess
        if kind == EXTRA_LATITUDES and count == rows:
            return reals[position + 1 : position + 1 + count]
        position += 1 + count
    return None
