"""Names of the per-gate columns of :meth:`DynamicModel.clip_stats` (``g3.channel_keep``), in one place."""

from __future__ import annotations

import re
from typing import Any

KEEP_AXES = ("frame_keep", "channel_keep", "tile_keep")
_GATE_KEY = re.compile(r"g(\d+)\.(\w+)")


def gate_key(gate: int, stat: str) -> str:
    """The column of ``stat`` (``frame_keep``, ``mac_fraction``, ...) of gated block ``gate``."""
    return f"g{gate}.{stat}"


def parse_gate_key(key: str) -> tuple[int, str] | None:
    """``(gate, stat)`` of a per-gate column; None for any other column."""
    match = _GATE_KEY.fullmatch(key)
    return (int(match.group(1)), match.group(2)) if match else None


def keep_columns(columns: list[str], *, prefix: str = "") -> list[str]:
    """The per-gate keep-rate columns among ``columns`` (after ``prefix``), by gate, then axis."""
    found = []
    for column in columns:
        parsed = parse_gate_key(column[len(prefix) :]) if column.startswith(prefix) else None
        if parsed is not None and parsed[1] in KEEP_AXES:
            found.append(((parsed[0], KEEP_AXES.index(parsed[1])), column))
    return [column for _, column in sorted(found)]


def distinct_keep_rates(records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per axis (``frame_keep``, ...), per gated block in order: how many different keep rates the clips
    in ``records`` got. 1 everywhere on an axis: that axis gives every clip the same count."""
    out: dict[str, list[int]] = {}
    for key in keep_columns(list(records[0])) if records else []:
        axis = parse_gate_key(key)[1]
        out.setdefault(axis, []).append(len({r[key] for r in records}))
    return out
