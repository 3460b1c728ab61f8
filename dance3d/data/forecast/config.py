"""Forecasting data settings: the ``data.forecast`` part of a run's ``DataConfig``."""

from __future__ import annotations

from dataclasses import dataclass

SYNTHETIC_SOURCES = ("storms", "traffic", "weather")
GRID_PREFIX = "grid:"
FIELD_FILE_SUFFIXES = (".h5", ".hdf5", ".nc", ".nc4", ".zarr", ".grib", ".grib2", ".grb", ".grb2")


@dataclass(frozen=True)
class ForecastDataConfig:
    """Sample shape and sizes; ``None`` means the dataset's own default (see ``docs/forecasting.md``).

    ``num_*`` are sample counts of the synthetic datasets; ``variables``, ``stride``,
    ``split_fractions`` and ``nan_policy`` apply to real field files and shipped grids.
    """

    t_in: int | None = None
    t_out: int | None = None
    height: int | None = None
    width: int | None = None
    num_train: int = 512
    num_val: int = 128
    num_test: int = 256
    variables: tuple[str, ...] = ()
    stride: int = 1
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    nan_policy: str = "refuse"

    def __post_init__(self) -> None:
        for name in ("t_in", "t_out", "height", "width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"forecast.{name} must be >= 1, got {value}")
        if min(self.num_train, self.num_val, self.num_test) < 1:
            raise ValueError("forecast.num_train/num_val/num_test must be >= 1")
        if self.stride < 1:
            raise ValueError(f"forecast.stride must be >= 1, got {self.stride}")


def is_forecast_source(source: str) -> bool:
    """Whether ``source`` names forecasting data: a synthetic dataset, ``grid:NAME`` or a field file."""
    lowered = source.lower().rstrip("/")
    return source in SYNTHETIC_SOURCES or source.startswith(GRID_PREFIX) or lowered.endswith(FIELD_FILE_SUFFIXES)
