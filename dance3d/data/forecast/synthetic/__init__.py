"""Synthetic forecasting datasets: ``storms``, ``traffic``, ``weather``."""

from dance3d.data.forecast.synthetic.dataset import (
    DEFAULTS,
    SyntheticForecast,
    SyntheticForecastConfig,
    default_config,
)

__all__ = ["DEFAULTS", "SyntheticForecast", "SyntheticForecastConfig", "default_config"]
