"""TaxiBJ city traffic: HDF5 with ``data`` (``N x 2 x 32 x 32`` in/out flow) and ``date`` (``b'2013070101'``).

``date`` is ``YYYYMMDD`` plus a half-hour slot ``01``-``48``; slot ``k`` starts at
``(k - 1) x 30`` minutes past midnight. Missing slots become gaps in ``times``, which windows
never cross.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dance3d.data.forecast.readers.optional import require
from dance3d.data.forecast.series import FieldDataError, FieldSeries

VARIABLES = ("inflow", "outflow")
SLOTS_PER_DAY = 48


def read_taxibj(path: str | Path) -> FieldSeries:
    """Read one TaxiBJ year file (e.g. ``BJ13_M32x32_T30_InOut.h5``)."""
    h5py = require("h5py", install="pip install h5py", purpose="reading TaxiBJ HDF5")
    with h5py.File(path, "r") as handle:
        for name in ("data", "date"):
            if name not in handle:
                raise FieldDataError(
                    f"{path}: no dataset {name!r}; a TaxiBJ file has 'data' and 'date', this one {list(handle)}"
                )
        data, dates = handle["data"], handle["date"][:]
        if data.ndim != 4 or data.shape[1] != len(VARIABLES):
            raise FieldDataError(f"{path}: 'data' has shape {data.shape}; expected N x 2 x H x W (inflow, outflow)")
        if dates.shape != (data.shape[0],):
            raise FieldDataError(f"{path}: 'date' has shape {dates.shape} for {data.shape[0]} frames of 'data'")
        values = np.asarray(data, dtype=np.float32)
    return FieldSeries(
        values=values,
        variables=VARIABLES,
        times=np.array([slot_time(value, path) for value in dates]),
        lat=None,
        lon=None,
        source=str(path),
        units=("vehicles per 30 min", "vehicles per 30 min"),
    )


def slot_time(value: bytes | str, path: str | Path) -> np.datetime64:
    """``b'2013070101'`` -> 2013-07-01T00:00; a clear error for anything else."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        if len(text) != 10:
            raise ValueError
        day = np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:8]}", "m")
        slot = int(text[8:])
        if not 1 <= slot <= SLOTS_PER_DAY:
            raise ValueError
    except ValueError as error:
        raise FieldDataError(f"{path}: date {text!r} is not YYYYMMDD + a half-hour slot 01-{SLOTS_PER_DAY}") from error
    return day + np.timedelta64((slot - 1) * 30, "m")
