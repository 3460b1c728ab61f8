"""Versioned JSON files of measured tables (MDP's latency table, DANCE's block cost table): one way to write and
read them, with one-line errors for a missing file, broken JSON, another file type or a newer format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dance3d.errors import ConfigError
from profiling.strict_json import dumps_strict


def write_table(data: dict[str, Any], path: str | Path) -> Path:
    """``data`` as strict, indented JSON at ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_strict(data, indent=1))
    return path


def read_table(path: str | Path, *, fmt: str, version: int, what: str, command: str) -> dict[str, Any]:
    """The JSON object at ``path`` whose ``format`` is ``fmt`` and ``format_version`` at most ``version``;
    ``what`` names the table in errors, ``command`` is the one that writes it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ConfigError(f"{path} is not a dance3d {what} (write one with '{command}')")
    if data.get("format_version", 0) > version:
        raise ConfigError(f"{path} was written by a newer dance3d")
    return data
