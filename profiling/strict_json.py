"""Strict JSON: NaN and infinities written as ``null`` so that any JSON parser reads the file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def strict_json(value: Any) -> Any:
    """``value`` with NaN / ±inf replaced by None, numpy scalars and arrays made plain, recursively."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar/array, torch tensor
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_strict(value: Any, *, indent: int | None = 2) -> str:
    """JSON text that any parser accepts (no NaN/Infinity tokens)."""
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)
