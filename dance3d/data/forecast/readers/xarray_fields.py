"""netCDF and zarr fields through xarray: named variables on (time, lat, lon) grids (WeatherBench, ERA5, CF).

Masked or ``_FillValue``/``missing_value`` points become NaN. Dimension spellings accepted:
``time``/``valid_time``; ``lat``/``latitude`` and ``lon``/``longitude`` (a lat-lon grid); ``y``/``x``
(another projection: ``lat``/``lon`` of the series are ``None``). Size-1 extra dimensions (a single
level or ensemble member) are dropped; larger ones are an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dance3d.data.forecast.readers.optional import require
from dance3d.data.forecast.series import FieldDataError, FieldSeries

TIME_DIMS = ("time", "valid_time")
LAT_DIMS = ("lat", "latitude")
LON_DIMS = ("lon", "longitude")
Y_DIMS = ("y", "rlat")
X_DIMS = ("x", "rlon")


def read_netcdf(path: str | Path, *, variables: Sequence[str] | None = None) -> FieldSeries:
    """Open a netCDF file's (time, lat, lon) variables as one ``FieldSeries``."""
    xr = require("xarray", install="pip install xarray netCDF4", purpose="reading netCDF")
    require("netCDF4", install="pip install netCDF4", purpose="reading netCDF")
    try:
        with xr.open_dataset(path, mask_and_scale=True) as dataset:
            return series_from_dataset(dataset, source=str(path), variables=variables)
    except (OSError, ValueError) as error:
        raise FieldDataError(f"{path}: cannot be read as netCDF ({error})") from error


def read_zarr(path: str | Path, *, variables: Sequence[str] | None = None) -> FieldSeries:
    """Open a zarr store's (time, lat, lon) variables as one ``FieldSeries``."""
    xr = require("xarray", install="pip install xarray zarr", purpose="reading zarr")
    require("zarr", install="pip install zarr", purpose="reading zarr")
    try:
        with xr.open_zarr(path, mask_and_scale=True, consolidated=_is_consolidated(Path(path))) as dataset:
            return series_from_dataset(dataset, source=str(path), variables=variables)
    except (OSError, ValueError, KeyError) as error:
        raise FieldDataError(f"{path}: cannot be read as zarr ({error})") from error


def _is_consolidated(path: Path) -> bool:
    """Whether a zarr store has consolidated metadata (v2 ``.zmetadata`` or v3 ``zarr.json``'s own key)."""
    if (path / ".zmetadata").is_file():
        return True
    root = path / "zarr.json"
    return root.is_file() and json.loads(root.read_text()).get("consolidated_metadata") is not None


def series_from_dataset(dataset: Any, *, source: str, variables: Sequence[str] | None = None) -> FieldSeries:
    """Stack ``variables`` (default: every data variable on a time + 2-D grid) of an xarray Dataset."""
    names = list(variables) if variables else [name for name in dataset.data_vars if _is_field(dataset[name])]
    if not names:
        found = {name: tuple(dataset[name].dims) for name in dataset.data_vars}
        raise FieldDataError(f"{source}: no variable on (time, lat, lon) dimensions; found {found}")
    missing = [name for name in names if name not in dataset.data_vars]
    if missing:
        raise FieldDataError(f"{source}: no variable {missing}; it has {list(dataset.data_vars)}")
    arrays = [_field_array(dataset[name], source) for name in names]
    dims = arrays[0].dims
    for name, array in zip(names, arrays, strict=True):
        if array.dims != dims or array.shape != arrays[0].shape:
            raise FieldDataError(
                f"{source}: variable {name!r} is on {dict(zip(array.dims, array.shape, strict=True))}, "
                f"{names[0]!r} on {dict(zip(dims, arrays[0].shape, strict=True))}; open them separately"
            )
    values = np.stack([np.asarray(array.values, dtype=np.float32) for array in arrays], axis=1)
    if values.shape[0] == 0:
        raise FieldDataError(f"{source}: the time axis '{dims[0]}' is empty")
    on_lat_lon = dims[1] in LAT_DIMS and dims[2] in LON_DIMS
    return FieldSeries(
        values=values,
        variables=tuple(names),
        times=_times(arrays[0][dims[0]].values),
        lat=_axis(arrays[0], dims[1]) if on_lat_lon else None,
        lon=_axis(arrays[0], dims[2]) if on_lat_lon else None,
        source=source,
        units=tuple(str(dataset[name].attrs.get("units", "")) for name in names),
    )


def _is_field(array: Any) -> bool:
    dims = [dim for dim, size in zip(array.dims, array.shape, strict=True) if size != 1]
    return len(dims) == 3 and dims[0] in TIME_DIMS and (dims[1] in LAT_DIMS + Y_DIMS) and dims[2] in LON_DIMS + X_DIMS


def _field_array(array: Any, source: str) -> Any:
    """``array`` as (time, y, x), dropping size-1 extra dimensions; a clear error for any other layout."""
    extra = [dim for dim, size in zip(array.dims, array.shape, strict=True) if size == 1 and not _known(dim)]
    squeezed = array.squeeze(extra, drop=True) if extra else array
    dims = squeezed.dims
    time = [dim for dim in dims if dim in TIME_DIMS]
    y = [dim for dim in dims if dim in LAT_DIMS + Y_DIMS]
    x = [dim for dim in dims if dim in LON_DIMS + X_DIMS]
    if len(dims) != 3 or len(time) != 1 or len(y) != 1 or len(x) != 1:
        layout = dict(zip(array.dims, array.shape, strict=True))
        raise FieldDataError(
            f"{source}: variable {array.name!r} has dimensions {layout}; expected (time, lat, lon) "
            "(also valid_time, latitude/longitude or y/x); select one level or member first"
        )
    return squeezed.transpose(time[0], y[0], x[0])


def _known(dim: str) -> bool:
    return dim in TIME_DIMS + LAT_DIMS + LON_DIMS + Y_DIMS + X_DIMS


def _axis(array: Any, dim: str) -> np.ndarray | None:
    return np.asarray(array[dim].values, dtype=np.float64) if dim in array.coords else None


def _times(values: np.ndarray) -> np.ndarray | None:
    """datetime64 times; cftime dates (e.g. a 360-day calendar) converted where each has a Gregorian twin."""
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[s]")
    try:
        return np.array([np.datetime64(value.isoformat(), "s") for value in values])
    except (AttributeError, ValueError):
        return None  # no time axis, or calendar dates such as 30 February that datetime64 cannot hold
