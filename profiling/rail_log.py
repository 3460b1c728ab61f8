"""Read a ``rail_logger.py`` CSV and integrate energy over a run's wall-clock window.

The logger and the measured run are separate processes (often separate Pythons), aligned only
by wall-clock epoch seconds: record the run's [start, end] with ``time.time()`` (the sweep's
``window_start_epoch_s``/``window_end_epoch_s`` columns) and ask for the energy in between.
"""

from __future__ import annotations

import csv
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiling.meters.integrate import window_energy_j
from profiling.meters.jetson import total_power_w

_SUFFIX = "_mW"
MIN_LOG_SAMPLES = 10  # a window holding fewer samples is refused: it would measure the interpolation


@dataclass(frozen=True)
class RailLog:
    """Timestamped rail powers: ``epoch_s[i]`` and ``rails_mw[name][i]``."""

    epoch_s: list[float]
    rails_mw: dict[str, list[float]]

    @property
    def rails(self) -> list[str]:
        return list(self.rails_mw)

    def power_w(self, rails: Sequence[str] | None = None) -> list[float]:
        """Total board power per sample (input rail, else the sum), or the sum of ``rails``."""
        if rails is not None:
            missing = sorted(set(rails) - set(self.rails_mw))
            if missing:
                raise KeyError(f"rails {missing} not in the log; it has {self.rails}")
            return [sum(self.rails_mw[r][i] for r in rails) / 1e3 for i in range(len(self.epoch_s))]
        return [
            total_power_w({name: values[i] for name, values in self.rails_mw.items()}) / 1e3
            for i in range(len(self.epoch_s))
        ]

    def energy_j(self, start_epoch_s: float, end_epoch_s: float, *, rails: Sequence[str] | None = None) -> float:
        """Energy between two wall-clock instants (inside the logged span, holding >= MIN_LOG_SAMPLES samples)."""
        energy_j = window_energy_j(self.epoch_s, self.power_w(rails), start_epoch_s, end_epoch_s)
        inside = bisect_right(self.epoch_s, end_epoch_s) - bisect_left(self.epoch_s, start_epoch_s)
        if inside < MIN_LOG_SAMPLES:
            raise ValueError(
                f"the window [{start_epoch_s:.3f}, {end_epoch_s:.3f}] ({end_epoch_s - start_epoch_s:.3f} s) holds "
                f"{inside} rail-log samples, fewer than {MIN_LOG_SAMPLES}: energy would be interpolated between "
                "samples, not measured. Loop the work for longer (at least 20 logger intervals)"
            )
        return energy_j


def _parse_row(row: list[str], width: int) -> list[float] | None:
    try:
        values = [float(v) for v in row]
    except ValueError:
        return None
    return values if len(values) == width else None


def load_rail_log(path: str | Path) -> RailLog:
    """Parse the logger's CSV (``epoch_s,<rail>_mW,...``); a torn last line is dropped."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0] if rows else None
    if not header or header[0] != "epoch_s" or not all(h.endswith(_SUFFIX) for h in header[1:]):
        raise ValueError(f"{path} is not a rail_logger CSV (header {header!r})")
    names = [h.removesuffix(_SUFFIX) for h in header[1:]]
    epoch_s: list[float] = []
    columns: list[list[float]] = [[] for _ in names]
    for line_no, row in enumerate(rows[1:], start=2):
        values = _parse_row(row, len(header))
        if values is None:
            if line_no == len(rows):
                break  # the logger was killed mid-write
            raise ValueError(f"{path}:{line_no}: malformed row {row!r}")
        if epoch_s and values[0] < epoch_s[-1]:
            raise ValueError(f"{path}:{line_no}: timestamps go backwards (wall clock stepped?)")
        epoch_s.append(values[0])
        for column, value in zip(columns, values[1:], strict=True):
            column.append(value)
    if len(epoch_s) < 2:
        raise ValueError(f"{path} holds {len(epoch_s)} samples; at least 2 are needed to integrate")
    return RailLog(epoch_s, dict(zip(names, columns, strict=True)))


def join_rail_log(table: Any, log: RailLog, *, rails: Sequence[str] | None = None) -> Any:
    """A sweep table (pandas DataFrame with ``window_start_epoch_s``/``window_end_epoch_s``/
    ``window_iterations``/``batch_size``) with the log's energy of each row's window added:
    ``rail_window_energy_j``, ``rail_energy_j`` (per call), ``rail_energy_per_clip_j``, ``rail_power_w``.

    Raises ``ValueError`` naming the row whose window the log does not cover or holds too few samples in.
    """
    needed = ["window_start_epoch_s", "window_end_epoch_s", "window_iterations", "batch_size"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no {', '.join(missing)} column(s): record it with a sweep's timed windows")
    window_j = []
    for number, row in enumerate(table.itertuples(index=False)):
        try:
            window_j.append(log.energy_j(row.window_start_epoch_s, row.window_end_epoch_s, rails=rails))
        except ValueError as exc:
            raise ValueError(f"row {number}: {exc}") from exc
    joined = table.copy()
    joined["rail_window_energy_j"] = window_j
    joined["rail_energy_j"] = joined["rail_window_energy_j"] / joined["window_iterations"]
    joined["rail_energy_per_clip_j"] = joined["rail_energy_j"] / joined["batch_size"]
    duration_s = joined["window_end_epoch_s"] - joined["window_start_epoch_s"]
    joined["rail_power_w"] = joined["rail_window_energy_j"] / duration_s
    return joined
