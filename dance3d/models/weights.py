"""Load pretrained weights from a local file (no hub downloads), with clear mismatch errors."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from dance3d.checkpoint.files import unreadable_reason
from dance3d.checkpoint.record import FORMAT
from dance3d.errors import CheckpointError


def _state_dict_from(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and obj.get("format") == FORMAT:  # a dance3d checkpoint: its model's weights
        obj = obj.get("state_dict")
    elif isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained(model: nn.Module, path: str | Path, *, skip_mismatched: tuple[str, ...] = ()) -> None:
    """Load a local weights file strictly; keys starting with ``skip_mismatched`` may differ."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise CheckpointError(f"cannot read weights file {path}: {unreadable_reason(path, exc)}") from None
    state = _state_dict_from(obj, path)
    own = model.state_dict()
    skip = lambda key: any(key.startswith(p) for p in skip_mismatched)  # noqa: E731
    missing = [k for k in own if k not in state and not skip(k)]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape and not skip(k)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong_shape)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise CheckpointError(f"weights in {path} do not match the model: {'; '.join(parts)}")
    loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(loadable, strict=not skip_mismatched)
