"""GRIB (editions 1 and 2) through ecCodes: one channel per ``shortName``, one frame per validity time.

Every variable must be present at every validity time, on one grid and one level. Points the
bitmap marks missing become NaN. ``lat``/``lon`` are given for regular lat-lon and Gaussian grids;
other projections (e.g. polar stereographic) have ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dance3d.data.forecast.readers.optional import require
from dance3d.data.forecast.series import FieldDataError, FieldSeries

LAT_LON_GRIDS = ("regular_ll", "regular_gg")


def read_grib(path: str | Path, *, variables: Sequence[str] | None = None) -> FieldSeries:
    """Read every message of a GRIB file into a (time, variable, y, x) series."""
    eccodes = require("eccodes", install="pip install eccodes", purpose="reading GRIB")
    fields: dict[tuple[str, np.datetime64], np.ndarray] = {}
    reference_grid: tuple | None = None
    units: dict[str, str] = {}
    seen: list[str] = []
    lat = lon = None
    with open(path, "rb") as handle:
        while True:
            try:
                message = eccodes.codes_grib_new_from_file(handle)
            except eccodes.GribInternalError as error:
                raise FieldDataError(f"{path}: not a readable GRIB file ({error})") from error
            if message is None:
                break
            try:
                name = eccodes.codes_get(message, "shortName")
                if name not in seen:
                    seen.append(name)
                if variables is not None and name not in variables:
                    continue
                time = _validity_time(eccodes, message)
                key = (name, time)
                if key in fields:
                    level = eccodes.codes_get(message, "level")
                    raise FieldDataError(
                        f"{path}: variable {name!r} has several messages at {time} (another level, here {level}); "
                        "a series holds one level per variable"
                    )
                grid = (
                    eccodes.codes_get(message, "gridType"),
                    eccodes.codes_get(message, "Nj"),
                    eccodes.codes_get(message, "Ni"),
                )
                reference_grid = reference_grid or grid
                if grid != reference_grid:
                    raise FieldDataError(
                        f"{path}: variable {name!r} at {time} is on grid {grid} (type, rows, columns), "
                        f"the file's first field on {reference_grid}; a series has one grid"
                    )
                fields[key] = _values(eccodes, message, grid[1], grid[2])
                units.setdefault(name, str(eccodes.codes_get(message, "units")))
                if lat is None and grid[0] in LAT_LON_GRIDS:
                    lat, lon = _lat_lon(eccodes, message, grid[1], grid[2])
            finally:
                eccodes.codes_release(message)
    return _assemble(path, fields, units, lat, lon, variables, seen)


def _assemble(
    path: str | Path,
    fields: dict[tuple[str, np.datetime64], np.ndarray],
    units: dict[str, str],
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    variables: Sequence[str] | None,
    seen: list[str],
) -> FieldSeries:
    if not seen:
        raise FieldDataError(f"{path}: no GRIB message in the file")
    names = list(variables) if variables is not None else seen
    missing = [name for name in names if name not in seen]
    if missing:
        raise FieldDataError(f"{path}: no GRIB messages of variable {missing}; it has {seen}")
    times = sorted({time for _, time in fields})
    for name in names:
        absent = [str(time) for time in times if (name, time) not in fields]
        if absent:
            raise FieldDataError(f"{path}: variable {name!r} is missing at {len(absent)} times, e.g. {absent[:3]}")
    values = np.stack([np.stack([fields[(name, time)] for name in names]) for time in times])
    return FieldSeries(
        values=values.astype(np.float32),
        variables=tuple(names),
        times=np.array(times, dtype="datetime64[s]"),
        lat=lat,
        lon=lon,
        source=str(path),
        units=tuple(units[name] for name in names),
    )


def _validity_time(eccodes, message) -> np.datetime64:
    date = str(eccodes.codes_get(message, "validityDate"))
    time = int(eccodes.codes_get(message, "validityTime"))
    return np.datetime64(f"{date[:4]}-{date[4:6]}-{date[6:8]}T{time // 100:02d}:{time % 100:02d}", "s")


def _values(eccodes, message, rows: int, columns: int) -> np.ndarray:
    values = np.asarray(eccodes.codes_get_values(message), dtype=np.float64)
    if eccodes.codes_get(message, "bitmapPresent"):
        values[values == eccodes.codes_get(message, "missingValue")] = np.nan
    return values.reshape(rows, columns)


def _lat_lon(eccodes, message, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    lats = np.asarray(eccodes.codes_get_array(message, "latitudes")).reshape(rows, columns)
    lons = np.asarray(eccodes.codes_get_array(message, "longitudes")).reshape(rows, columns)
    return lats[:, 0].copy(), lons[0, :].copy()
