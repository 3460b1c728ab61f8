"""Real forecasting data: ``open_field_source`` for files, ``SHIPPED_GRIDS`` for grids other packages ship.

Formats: SEVIR (HDF5 + ``CATALOG.csv``), TaxiBJ (HDF5), netCDF and zarr through xarray
(WeatherBench, ERA5, CF files), GRIB through ecCodes, unpacked Met Office PP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dance3d.data.forecast.readers.grib import read_grib
from dance3d.data.forecast.readers.optional import MissingPackageError, require
from dance3d.data.forecast.readers.pp import read_pp
from dance3d.data.forecast.readers.sevir import IMAGE_TYPES, read_sevir_events, read_sevir_file
from dance3d.data.forecast.readers.shipped import SHIPPED_GRIDS, load_shipped_grid
from dance3d.data.forecast.readers.taxibj import read_taxibj
from dance3d.data.forecast.readers.xarray_fields import read_netcdf, read_zarr
from dance3d.data.forecast.series import FieldDataError, FieldSeries

__all__ = [
    "SHIPPED_GRIDS",
    "MissingPackageError",
    "load_shipped_grid",
    "open_field_source",
    "read_grib",
    "read_netcdf",
    "read_pp",
    "read_sevir_events",
    "read_sevir_file",
    "read_taxibj",
    "read_zarr",
]

HDF5_SUFFIXES = (".h5", ".hdf5", ".he5")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
GRIB_SUFFIXES = (".grib", ".grib2", ".grb", ".grb2")
PP_SUFFIXES = (".pp",)
ZARR_MARKERS = (".zgroup", "zarr.json", ".zattrs")


def open_field_source(path: str | Path, *, variables: Sequence[str] | None = None) -> FieldSeries:
    """Read a field file (or zarr folder) by its format; ``variables`` picks and orders channels."""
    path = Path(path)
    if not path.exists():
        raise FieldDataError(f"{path}: no such file or folder")
    kind = _format(path)
    if kind == "zarr":
        return read_zarr(path, variables=variables)
    if kind == "netcdf":
        return read_netcdf(path, variables=variables)
    if kind == "grib":
        return read_grib(path, variables=variables)
    if kind == "pp":
        if variables is not None and len(variables) != 1:
            raise FieldDataError(f"{path}: a PP file is read as one variable; name one, got {list(variables)}")
        return read_pp([path], variable=variables[0] if variables else path.stem)
    series = _read_hdf5(path)
    return series.select(list(variables)) if variables else series


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        if suffix == ".zarr" or any((path / marker).exists() for marker in ZARR_MARKERS):
            return "zarr"
        raise FieldDataError(f"{path}: a folder, but not a zarr store (no .zgroup or zarr.json)")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"GRIB") or suffix in GRIB_SUFFIXES:
        return "grib"
    if magic.startswith(b"CDF") or suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if magic.startswith(b"\x89HDF") or suffix in HDF5_SUFFIXES:
        return "netcdf" if suffix in NETCDF_SUFFIXES else "hdf5"
    if suffix in PP_SUFFIXES:
        return "pp"
    raise FieldDataError(
        f"{path}: unknown field format (suffix {suffix or 'none'}); expected SEVIR/TaxiBJ HDF5 (.h5), "
        "netCDF (.nc), a zarr folder, GRIB (.grib2/.grb) or PP (.pp)"
    )


def _read_hdf5(path: Path) -> FieldSeries:
    """SEVIR or TaxiBJ, told apart by the datasets inside."""
    h5py = require("h5py", install="pip install h5py", purpose="reading HDF5")
    try:
        with h5py.File(path, "r") as handle:
            names = list(handle)
    except OSError as error:
        raise FieldDataError(f"{path}: cannot be read as HDF5 ({error})") from error
    if any(name in names for name in IMAGE_TYPES):
        return read_sevir_file(path)
    if "data" in names or "date" in names:
        return read_taxibj(path)  # names the missing one when only one is there
    raise FieldDataError(
        f"{path}: an HDF5 file that is neither SEVIR ({', '.join(IMAGE_TYPES)}: N x H x W x T) nor TaxiBJ "
        f"('data' + 'date'); it has {names}"
    )
