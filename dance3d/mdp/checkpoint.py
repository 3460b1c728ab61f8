"""Checkpoints of MDP-pruned models (kind ``pruned``): the dense zoo spec, clip shape and plan, plus weights.

The model is rebuilt by extracting the dense model's structure at the stored clip shape and
materialising the stored plan (first channels kept), then loading the saved weights, so a
``pruned`` checkpoint loads with ``torch.load(weights_only=True)`` like any other.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx

from dance3d.mdp.graph import extract_structure
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan

KIND = "pruned"


def pruned_spec(dense_spec: dict[str, Any], clip_shape: tuple[int, ...], plan: PrunePlan) -> dict[str, Any]:
    """What rebuilds a pruned model: the dense zoo spec, the clip shape of the analysis and the plan."""
    return {"dense": dict(dense_spec), "clip_shape": list(clip_shape), **plan.to_dict()}


def build_pruned_model(checkpoint: dict[str, Any]) -> fx.GraphModule:
    """``MODEL_BUILDERS['pruned']``."""
    from dance3d.models import create_model

    spec = checkpoint["model"]
    dense_spec = spec["dense"]
    dense = create_model(dense_spec["name"], num_classes=dense_spec["num_classes"], **dense_spec.get("options", {}))
    structure = extract_structure(dense, tuple(spec["clip_shape"]))
    model = materialize(structure, PrunePlan.from_dict(spec))
    model.load_state_dict(checkpoint["state_dict"])
    return model
