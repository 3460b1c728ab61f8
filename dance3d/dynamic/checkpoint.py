"""Checkpoints of dynamic models (kind ``dynamic``): backbone spec + dynamic settings + weights."""

from __future__ import annotations

from typing import Any

from dance3d.config import from_dict, to_dict
from dance3d.dynamic.config import DynamicConfig
from dance3d.dynamic.model import DynamicModel, convert_model

KIND = "dynamic"


def dynamic_spec(model: DynamicModel, backbone_spec: dict[str, Any]) -> dict[str, Any]:
    """What rebuilds ``model``: the spec of its backbone (zoo or MDP-pruned), the clip shape, the dynamic config."""
    return {
        "backbone": dict(backbone_spec),
        "clip_shape": list(model.clip_shape),
        "dynamic": to_dict(model.config),
    }


def build_dynamic_model(checkpoint: dict[str, Any]) -> DynamicModel:
    """``MODEL_BUILDERS['dynamic']``: rebuild in ``simulate`` mode."""
    from dance3d.training.checkpoint import build_backbone

    spec = checkpoint["model"]
    dense = build_backbone(spec["backbone"])  # a zoo spec, or an MDP-pruned one
    model = convert_model(dense, clip_shape=tuple(spec["clip_shape"]), config=from_dict(DynamicConfig, spec["dynamic"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model


def dense_state_dict(model: DynamicModel) -> dict[str, Any]:
    """The backbone's weights under the dense model's parameter names (gated wrappers removed)."""
    out = {}
    for key, value in model.backbone.state_dict().items():
        for name in model.block_names:
            if key.startswith(name + ".block."):
                key = name + "." + key[len(name + ".block.") :]
                break
        out[key] = value
    return out
