"""Checkpoint kind ``dense``: a zoo model, spec ``{"name", "num_classes", "options"}``, and its weights."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from dance3d.checkpoint import DENSE, Checkpoint, register_checkpoint_kind
from dance3d.models.registry import create_model


def build_zoo_network(spec: dict[str, Any]) -> nn.Module:
    """The zoo model of ``spec`` with fresh weights."""
    return create_model(spec["name"], num_classes=spec["num_classes"], **spec.get("options", {}))


def build_dense_model(checkpoint: Checkpoint) -> nn.Module:
    model = build_zoo_network(checkpoint.model)
    model.load_state_dict(checkpoint.state_dict)
    return model


register_checkpoint_kind(DENSE, build_model=build_dense_model, build_network=build_zoo_network)
