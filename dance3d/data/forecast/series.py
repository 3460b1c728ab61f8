"""``FieldSeries``: a time series of gridded fields in physical units, as every reader returns it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dance3d.errors import DataError


class FieldDataError(DataError, ValueError):
    """A field file or series cannot be used; the message names the source and what is wrong."""


@dataclass(frozen=True)
class FieldSeries:
    """``T`` frames of a ``C x H x W`` field: float32 values in physical units, NaN where missing.

    ``lat``/``lon`` are the grid's 1-D coordinates in degrees, or ``None`` when the grid is not a
    regular lat-lon grid (e.g. polar stereographic, or a city grid). ``times`` is datetime64 or
    ``None`` when the source has no time axis. ``source`` (file path or grid name) is what error
    messages and reports show.
    """

    values: np.ndarray
    variables: tuple[str, ...]
    times: np.ndarray | None
    lat: np.ndarray | None
    lon: np.ndarray | None
    source: str
    units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = self.values
        if not isinstance(values, np.ndarray) or values.ndim != 4:
            shape = getattr(values, "shape", None)
            raise FieldDataError(f"{self.source}: field values must be a (T, C, H, W) array, got shape {shape}")
        if values.dtype != np.float32:
            raise FieldDataError(f"{self.source}: field values must be float32, got {values.dtype}")
        steps, channels, height, width = values.shape
        if len(self.variables) != channels:
            raise FieldDataError(
                f"{self.source}: {channels} channels but {len(self.variables)} variable names {self.variables}"
            )
        if self.units and len(self.units) != channels:
            raise FieldDataError(f"{self.source}: {channels} channels but {len(self.units)} units {self.units}")
        if self.times is not None:
            if self.times.shape != (steps,) or not np.issubdtype(self.times.dtype, np.datetime64):
                raise FieldDataError(
                    f"{self.source}: times must be ({steps},) datetime64, got {self.times.shape} {self.times.dtype}"
                )
        for name, axis, size in (("lat", self.lat, height), ("lon", self.lon, width)):
            if axis is not None and np.shape(axis) != (size,):
                raise FieldDataError(f"{self.source}: {name} must have shape ({size},), got {np.shape(axis)}")

    @property
    def num_steps(self) -> int:
        """Number of time steps ``T``."""
        return int(self.values.shape[0])

    def nan_counts(self) -> dict[str, int]:
        """Missing (NaN) values per variable, only for variables that have any."""
        counts = np.isnan(self.values).sum(axis=(0, 2, 3))
        return {name: int(count) for name, count in zip(self.variables, counts, strict=True) if count}

    def select(self, variables: tuple[str, ...] | list[str]) -> FieldSeries:
        """The series restricted to ``variables`` (in that order); a clear error names any unknown one."""
        missing = [name for name in variables if name not in self.variables]
        if missing:
            raise FieldDataError(f"{self.source}: no variable {missing}; it has {list(self.variables)}")
        indices = [self.variables.index(name) for name in variables]
        units = tuple(self.units[i] for i in indices) if self.units else ()
        return FieldSeries(
            values=np.ascontiguousarray(self.values[:, indices]),
            variables=tuple(variables),
            times=self.times,
            lat=self.lat,
            lon=self.lon,
            source=self.source,
            units=units,
        )
