"""Checkpoints of dynamic models (kind ``dynamic``): backbone spec + dynamic settings + weights + knobs.

The backbone is the network of any kind that registers ``build_network`` (a zoo model, an
MDP-pruned one); its spec and kind travel in the dynamic spec.

The run-time knobs (``dance3d.dynamic.knobs``) are part of the spec, so a checkpoint written with
knobs applied (``dance3d study deploy``) runs at that operating point wherever it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dance3d.models  # noqa: F401 - registers "dense", the usual backbone kind
from dance3d.checkpoint import Checkpoint, build_network, infer_kind, register_checkpoint_kind, save_checkpoint
from dance3d.config import from_dict, to_dict
from dance3d.dynamic.config import DynamicConfig
from dance3d.dynamic.knobs import apply_knobs, current_knobs
from dance3d.dynamic.model import DynamicModel, convert_model
from dance3d.errors import CheckpointError, ConfigError

KIND = "dynamic"


def dynamic_spec(model: DynamicModel, backbone_spec: dict[str, Any], *, backbone_kind: str) -> dict[str, Any]:
    """What rebuilds ``model``: its backbone's spec and checkpoint kind, clip shape, dynamic config and knobs."""
    return {
        "backbone": dict(backbone_spec),
        "backbone_kind": backbone_kind,
        "clip_shape": list(model.clip_shape),
        "dynamic": to_dict(model.config),
        "knobs": applied_knobs(model),
    }


def applied_knobs(model: DynamicModel) -> dict[str, float]:
    """The knobs set away from 0 (``{}``: the controller as trained)."""
    return {name: value for name, value in current_knobs(model).items() if value != 0.0}


REMOVED_OPTIONS: dict[str, Any] = {"channel_bias_spread": 0.0, "channel_context_shift": False}
"""Controller options that no longer exist, with their neutral values: a checkpoint that saved them so still loads."""


def saved_dynamic_config(saved: dict[str, Any]) -> DynamicConfig:
    """The dynamic config of a checkpoint's spec; one trained with a removed option on is refused by name."""
    used = [name for name, neutral in REMOVED_OPTIONS.items() if saved.get(name, neutral) != neutral]
    if used:
        raise CheckpointError(f"the checkpoint was trained with {', '.join(used)}, an option this version removed")
    return from_dict(DynamicConfig, {k: v for k, v in saved.items() if k not in REMOVED_OPTIONS})


KNOB_RECORDS = ("study_trial", "budget")
"""Checkpoint entries saying where its knobs came from (``study deploy``, ``budget``): only the latest is kept."""


def save_with_knobs(
    model: DynamicModel, checkpoint: Checkpoint, *, source: str | Path, out: str | Path, **record: Any
) -> Path:
    """Write ``checkpoint`` (loaded from ``source``) again to ``out`` with ``model``'s current knobs and ``record``
    (one of :data:`KNOB_RECORDS`: where the knobs came from; the source's own record stays in the source).
    Refuses to overwrite ``source``: the new knobs are set relative to it."""
    if set(record) - set(KNOB_RECORDS):
        raise ValueError(f"knob records are {KNOB_RECORDS}, got {sorted(record)}")
    if Path(out).resolve() == Path(source).resolve():
        raise ConfigError(f"write the model to another file than {source}: its knob settings are relative to it")
    extras = {k: v for k, v in checkpoint.extras.items() if k not in KNOB_RECORDS}
    spec = dynamic_spec(model, checkpoint.model["backbone"], backbone_kind=backbone_kind(checkpoint.model))
    return save_checkpoint(checkpoint.replace(model=spec, extras={**extras, **record}), out)


def backbone_kind(spec: dict[str, Any]) -> str:
    """The checkpoint kind of a dynamic spec's backbone (inferred for files that predate recording it)."""
    return spec.get("backbone_kind") or infer_kind(spec["backbone"])


def build_dynamic_model(checkpoint: Checkpoint) -> DynamicModel:
    """Rebuild in ``simulate`` mode."""
    spec = checkpoint.model
    dense = build_network(spec["backbone"], backbone_kind(spec))
    model = convert_model(dense, clip_shape=tuple(spec["clip_shape"]), config=saved_dynamic_config(spec["dynamic"]))
    model.load_state_dict(checkpoint.state_dict)
    try:
        apply_knobs(model, spec.get("knobs", {}))  # checkpoints written before knobs were saved have none
    except ConfigError as exc:
        raise CheckpointError(f"the checkpoint's knobs do not fit its model: {exc}") from exc
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


register_checkpoint_kind(KIND, build_model=build_dynamic_model)
