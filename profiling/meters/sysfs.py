"""Reading sysfs attribute files under a configurable root (tests point it at a temp tree)."""

from __future__ import annotations

from pathlib import Path

from profiling.meters.base import MeterError


class SysfsPermissionError(MeterError):
    """A sysfs file exists but this user may not read it."""


def under_root(root: str | Path, path: str) -> Path:
    """``path`` (absolute, e.g. ``/sys/class/hwmon``) re-rooted under ``root``."""
    return Path(root) / path.lstrip("/")


def read_text(path: Path) -> str:
    """Contents of a sysfs file, stripped; OS errors become :class:`MeterError` naming the file."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except PermissionError as exc:
        raise SysfsPermissionError(f"permission denied reading {path}") from exc
    except OSError as exc:
        raise MeterError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_number(path: Path) -> float:
    """A sysfs value such as ``1234`` (some drivers append a unit, e.g. ``32760 ma``)."""
    text = read_text(path)
    try:
        return float(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise MeterError(f"{path} does not hold a number: {text!r}") from exc


def read_int(path: Path) -> int:
    """An integer sysfs value (counters such as ``energy_uj`` exceed float precision)."""
    text = read_text(path)
    try:
        return int(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise MeterError(f"{path} does not hold an integer: {text!r}") from exc
