"""Real gridded series that other packages ship: small, but real, for sliding-window forecasting.

Each loader finds its files through the package itself (``iris_sample_data.path``, ``hvsampledata``'s
loader, ``dpkg-query -L``) and raises ``MissingPackageError`` saying what to install. What each
grid is and is good for: ``docs/forecast-data.md``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from dance3d.data.forecast.readers.grib import read_grib
from dance3d.data.forecast.readers.optional import MissingPackageError, require
from dance3d.data.forecast.readers.pp import read_pp
from dance3d.data.forecast.readers.xarray_fields import read_netcdf, series_from_dataset
from dance3d.data.forecast.series import FieldDataError, FieldSeries

IRIS_INSTALL = "pip install iris-sample-data"
GRIB_DOC_PACKAGE = "python-grib-doc"


def _iris_file(relative: str) -> Path:
    package = require("iris_sample_data", install=IRIS_INSTALL, purpose="this shipped grid")
    path = Path(package.path) / relative
    if not path.exists():
        raise FieldDataError(f"{path}: not in the installed iris-sample-data; reinstall it ({IRIS_INSTALL})")
    return path


def _named(series: FieldSeries, name: str) -> FieldSeries:
    """The series with the grid's name as its source (what reports and errors show)."""
    return FieldSeries(series.values, series.variables, series.times, series.lat, series.lon, name, series.units)


def iris_air_temp(scenario: str = "A1B") -> FieldSeries:
    """Met Office model 1.5 m air temperature over North America, 240 annual means (1860-2099) x 37 x 49."""
    name = "iris-air-temp" if scenario == "A1B" else f"iris-air-temp-{scenario.lower()}"
    return _named(read_netcdf(_iris_file(f"{scenario}_north_america.nc"), variables=["air_temperature"]), name)


def iris_sst() -> FieldSeries:
    """OSTIA monthly sea-surface temperature, 54 months (2006-04..2010-09) x 18 x 432 (5 S-5 N); land is NaN."""
    return _named(read_netcdf(_iris_file("ostia_monthly.nc"), variables=["surface_temperature"]), "iris-sst")


def iris_sea_ice() -> FieldSeries:
    """Climate-model northward sea-ice velocity, 120 monthly PP files (1890-1899) x 215 x 360."""
    folder = _iris_file("UM")
    paths = sorted(folder.glob("northward_sea_ice_velocity.*.pp"))
    if not paths:
        raise FieldDataError(f"{folder}: no northward_sea_ice_velocity.*.pp; reinstall it ({IRIS_INSTALL})")
    return read_pp(paths, variable="northward_sea_ice_velocity", units="m s-1", source="iris-sea-ice")


def hvsampledata_air() -> FieldSeries:
    """NCEP/NCAR reanalysis air temperature, 20 six-hourly steps (2014-02-24..28) x 25 x 53 over North America."""
    package = require("hvsampledata", install="pip install hvsampledata", purpose="grid hvsampledata-air")
    require("xarray", install="pip install xarray netCDF4", purpose="grid hvsampledata-air")
    return series_from_dataset(package.air_temperature("xarray"), source="hvsampledata-air", variables=["air"])


def debian_doc_file(package: str, file_name: str) -> Path:
    """A file of an installed Debian package, found through dpkg's file list."""
    install = f"install the Debian package: apt-get install {package}"
    if shutil.which("dpkg-query") is None:
        raise MissingPackageError(f"{file_name} comes with the Debian package {package}, and dpkg is missing here")
    listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise MissingPackageError(f"{file_name} comes with the Debian package {package}, not installed: {install}")
    for line in listing.stdout.splitlines():
        if Path(line).name == file_name and Path(line).is_file():
            return Path(line)
    raise MissingPackageError(f"{package} is installed without {file_name}; reinstall it: apt-get install {package}")


def safrica_grib() -> FieldSeries:
    """One NCEP forecast over southern Africa: 25 lead times (0-72 h, 3-hourly) x 3 variables x 140 x 210."""
    require("eccodes", install="pip install eccodes", purpose="grid safrica-grib")
    return _named(read_grib(debian_doc_file(GRIB_DOC_PACKAGE, "safrica.grib2")), "safrica-grib")


SHIPPED_GRIDS: dict[str, Callable[[], FieldSeries]] = {
    "iris-air-temp": iris_air_temp,
    "iris-air-temp-e1": lambda: iris_air_temp("E1"),
    "iris-sst": iris_sst,
    "iris-sea-ice": iris_sea_ice,
    "hvsampledata-air": hvsampledata_air,
    "safrica-grib": safrica_grib,
}


def load_shipped_grid(name: str) -> FieldSeries:
    """``SHIPPED_GRIDS[name]()`` with a clear error for an unknown name."""
    if name not in SHIPPED_GRIDS:
        raise FieldDataError(f"unknown shipped grid {name!r}; choose one of {sorted(SHIPPED_GRIDS)}")
    return SHIPPED_GRIDS[name]()
