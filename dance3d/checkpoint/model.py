"""Rebuilding a checkpoint's model through its registered kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from dance3d.checkpoint.files import checkpoint_path, load_checkpoint
from dance3d.checkpoint.kinds import build_network, checkpoint_kind
from dance3d.checkpoint.record import Checkpoint
from dance3d.config import from_dict
from dance3d.data.registry import DataConfig
from dance3d.errors import CheckpointError, ConfigError


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with what ``eval`` and ``profile`` need to feed it."""

    model: nn.Module
    data: DataConfig
    classes: tuple[str, ...]
    kind: str
    checkpoint: Checkpoint
    path: Path  # the file, resolved: one spelling for one checkpoint wherever runs record where a model came from


def build_model(checkpoint: Checkpoint, *, source: str | Path = "checkpoint") -> nn.Module:
    """The model ``checkpoint`` holds, rebuilt by its kind, weights loaded, in eval mode."""
    builder = checkpoint_kind(checkpoint.kind).build_model
    try:
        model = builder(checkpoint)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{source}: checkpoint does not rebuild its model: {exc}") from exc
    return model.eval()


def load_network(checkpoint: Checkpoint, *, source: str | Path = "checkpoint") -> nn.Module:
    """The checkpoint's network as a module tree (its kind's ``build_network``), weights loaded, in eval mode."""
    try:
        network = build_network(checkpoint.model, checkpoint.kind)
        network.load_state_dict(checkpoint.state_dict)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{source}: checkpoint does not rebuild its network: {exc}") from exc
    return network.eval()


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the model of a checkpoint of any registered kind, in eval mode on the CPU."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint, source=path)
    try:
        data = from_dict(DataConfig, checkpoint.data)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the checkpoint's data settings do not load: {exc}") from exc
    return LoadedModel(model, data, checkpoint.classes, checkpoint.kind, checkpoint, checkpoint_path(path))
