"""Atomic checkpoints (write to a temp file, then rename) and rebuilding models from them.

A checkpoint is a plain dict loadable with ``torch.load(weights_only=True)``. ``kind`` says how
to rebuild the model; each kind's builder lives with the code that trains it.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from dance3d.config import from_dict
from dance3d.data.registry import DataConfig
from dance3d.errors import CheckpointError

FORMAT = "dance3d-checkpoint"
FORMAT_VERSION = 1

# kind -> "module:function" building the model from a checkpoint dict (imported lazily).
MODEL_BUILDERS: dict[str, str] = {
    "dense": "dance3d.training.checkpoint:build_dense_model",
    "dynamic": "dance3d.dynamic.checkpoint:build_dynamic_model",
    "pruned": "dance3d.mdp.checkpoint:build_pruned_model",
    "forecast": "dance3d.forecast.checkpoint:build_forecast_model",
}


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with what ``eval`` and ``profile`` need to feed it."""

    model: nn.Module
    data: DataConfig
    classes: tuple[str, ...]
    kind: str
    checkpoint: dict[str, Any]


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` atomically: a killed process leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a dance3d checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or not a torch file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dance3d checkpoint (plain weights? use --pretrained)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer dance3d (format {payload['format_version']})")
    return payload


def build_backbone(spec: dict[str, Any]) -> nn.Module:
    """The network of a model spec, as a module tree with fresh weights: a zoo spec, or an MDP-pruned one."""
    from dance3d.mdp.checkpoint import build_pruned_backbone, is_pruned_spec
    from dance3d.models import create_model

    if is_pruned_spec(spec):  # e.g. 'dance3d ava' run on a 'dance3d mdp' checkpoint
        return build_pruned_backbone(spec)
    return create_model(spec["name"], num_classes=spec["num_classes"], **spec.get("options", {}))


def build_dense_model(checkpoint: dict[str, Any]) -> nn.Module:
    """``MODEL_BUILDERS['dense']`` (also the module-tree form of a ``pruned`` checkpoint's model)."""
    model = build_backbone(checkpoint["model"])
    model.load_state_dict(checkpoint["state_dict"])
    return model


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the model of any checkpoint kind, in eval mode on the CPU."""
    checkpoint = load_checkpoint(path)
    kind = checkpoint.get("kind", "dense")
    if kind not in MODEL_BUILDERS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r}")
    module_name, function_name = MODEL_BUILDERS[kind].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    try:
        model = builder(checkpoint)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not rebuild its model: {exc}") from exc
    model.eval()
    data = from_dict(DataConfig, checkpoint["data"])
    return LoadedModel(model, data, tuple(checkpoint["classes"]), kind, checkpoint)
