"""Build a forecasting dataset from a run's data settings: synthetic, a shipped grid, or a field file."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from dance3d.data.forecast.config import GRID_PREFIX, SYNTHETIC_SOURCES, ForecastDataConfig
from dance3d.data.forecast.synthetic import SyntheticForecast, default_config
from dance3d.errors import ConfigError, DataError

REAL_DATA_FRAMES = (4, 4)  # (t_in, t_out) of real data when data.forecast does not set them


def build_forecast_dataset(
    source: str, settings: ForecastDataConfig, split: str, *, seed: int = 0, variables: tuple[str, ...] | None = None
) -> Dataset:
    """The ``split`` of forecasting data ``source``; ``variables`` (e.g. a checkpoint's) must match its channels."""
    if source in SYNTHETIC_SOURCES:
        try:
            config = default_config(
                source,
                t_in=settings.t_in,
                t_out=settings.t_out,
                height=settings.height,
                width=settings.width,
                seed=seed,
                num_train=settings.num_train,
                num_val=settings.num_val,
                num_test=settings.num_test,
            )
        except ValueError as error:
            raise ConfigError(f"data.forecast: {error}") from error
        dataset: Dataset = SyntheticForecast(split, config)
    else:
        dataset = _windowed(source, settings, split)
    if variables is not None and tuple(dataset.variables) != tuple(variables):
        raise DataError(
            f"the model forecasts variables {list(variables)}, {source} gives {list(dataset.variables)}; "
            "pick them with --set data.forecast.variables=NAME,..."
        )
    return dataset


def _windowed(source: str, settings: ForecastDataConfig, split: str) -> Dataset:
    """A real field series (file or shipped grid) cut into windows."""
    path = Path(source).expanduser()
    if not source.startswith(GRID_PREFIX) and not path.exists():
        raise DataError(f"data file not found: {path}")
    if settings.height is not None or settings.width is not None:
        raise ConfigError("data.forecast.height/width apply to synthetic data only; a field file has its own grid")
    from dance3d.data.forecast.windows import WindowedFieldDataset

    if source.startswith(GRID_PREFIX):
        from dance3d.data.forecast.readers import SHIPPED_GRIDS

        name = source[len(GRID_PREFIX) :]
        if name not in SHIPPED_GRIDS:
            raise DataError(f"unknown shipped grid {name!r}; available: {', '.join(sorted(SHIPPED_GRIDS))}")
        series = SHIPPED_GRIDS[name]()
        if settings.variables:
            series = _select(series, settings.variables)
    else:
        from dance3d.data.forecast.readers import open_field_source

        series = open_field_source(path, variables=settings.variables or None)
    t_in = settings.t_in or REAL_DATA_FRAMES[0]
    t_out = settings.t_out or REAL_DATA_FRAMES[1]
    try:
        return WindowedFieldDataset(
            series,
            t_in=t_in,
            t_out=t_out,
            split=split,
            split_fractions=settings.split_fractions,
            stride=settings.stride,
            nan_policy=settings.nan_policy,
        )
    except ValueError as error:
        raise DataError(str(error)) from error


def _select(series, variables: tuple[str, ...]):  # noqa: ANN001, ANN202 - FieldSeries arrives with its module
    from dataclasses import replace

    missing = [v for v in variables if v not in series.variables]
    if missing:
        raise DataError(f"{series.source} has no variable(s) {missing}; it has {list(series.variables)}")
    index = [series.variables.index(v) for v in variables]
    units = tuple(series.units[i] for i in index) if series.units else ()
    return replace(series, values=series.values[:, index], variables=tuple(variables), units=units)
