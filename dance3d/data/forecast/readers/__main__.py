"""``python -m dance3d.data.forecast.readers``: a table of the shipped grids installed here (sizes, time span, NaN)."""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from dance3d.data.forecast.readers.optional import MissingPackageError
from dance3d.data.forecast.readers.shipped import SHIPPED_GRIDS
from dance3d.data.forecast.series import FieldSeries
from dance3d.data.forecast.windows import WindowedFieldDataset, split_bounds

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def describe(name: str, series: FieldSeries) -> list:
    """One table row: shape, variables, units, time span and step, missing share, steps per split, and the
    mean ``calm_fraction`` of the train windows of 2 input frames and 1 target frame."""
    bounds = split_bounds(series.num_steps, SPLIT_FRACTIONS)
    train = WindowedFieldDataset(series, t_in=2, t_out=1, split="train", nan_policy="fill")
    calm = np.mean([train[index]["meta"]["calm_fraction"] for index in range(len(train))])
    return [
        name,
        "x".join(str(size) for size in series.values.shape),
        ", ".join(series.variables),
        ", ".join(series.units),
        f"{series.times[0].astype('datetime64[D]')} .. {series.times[-1].astype('datetime64[D]')}",
        _median_step(series.times),
        f"{100 * np.isnan(series.values).mean():.1f}",
        "/".join(str(size) for size in np.diff(bounds)),
        "lat-lon" if series.lat is not None else "projected",
        f"{calm:.2f}",
    ]


def _median_step(times: np.ndarray) -> str:
    if times.size < 2:
        return "-"
    hours = float(np.median(np.diff(times)) / np.timedelta64(1, "h"))
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:.1f} d"


def main() -> None:
    rows, missing = [], []
    for name, load in SHIPPED_GRIDS.items():
        try:
            rows.append(describe(name, load()))
        except MissingPackageError as error:
            missing.append(f"{name}: {error}")
    headers = ["grid", "T x C x H x W", "variables", "units", "time span", "median step", "NaN %",
               "steps train/val/test", "grid type", "calm (train, 2->1)"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))
    for line in missing:
        print(line)


if __name__ == "__main__":
    main()
