"""Co-pruned checkpoints (kind ``copruned``): the backbone's zoo spec plus the co-pruning settings.

The spec is the dense forecaster's zoo spec (``name``, ``num_classes``, ``options`` with ``t_in`` /
``t_out``) with a ``copruning`` entry, so tools that read a forecaster's frame counts read these too.
:func:`save_with_thresholds` writes one again with a model's current thresholds (``study deploy``,
``budget``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from dance3d.checkpoint import Checkpoint, register_checkpoint_kind, save_checkpoint
from dance3d.config import from_dict, to_dict
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.knobs import current_thresholds
from dance3d.copruning.wrappers import coprune_model
from dance3d.errors import ConfigError
from dance3d.forecast.checkpoint import build_forecaster

KIND = "copruned"


def copruned_spec(backbone_spec: dict[str, Any], config: CopruneConfig) -> dict[str, Any]:
    return {**backbone_spec, "copruning": to_dict(config)}


def build_copruned_network(spec: dict[str, Any]) -> nn.Module:
    """The co-pruned forecaster of ``spec`` with fresh weights."""
    backbone_spec = {key: value for key, value in spec.items() if key != "copruning"}
    config = from_dict(CopruneConfig, spec["copruning"], prefix="copruning.")
    return coprune_model(build_forecaster(backbone_spec), config)


def build_copruned_model(checkpoint: Checkpoint) -> nn.Module:
    model = build_copruned_network(checkpoint.model)
    model.load_state_dict(checkpoint.state_dict)
    return model


def save_with_thresholds(
    model: CoprunedForecaster, checkpoint: Checkpoint, *, source: str | Path, out: str | Path, **record: Any
) -> Path:
    """Write ``checkpoint`` (loaded from ``source``) again to ``out`` with ``model``'s current thresholds in its
    spec and ``record`` entries (e.g. ``study_trial``: where they came from). Refuses to overwrite ``source``."""
    if Path(out).resolve() == Path(source).resolve():
        raise ConfigError(f"write the model to another file than {source}: the study measured that one")
    spec = {**checkpoint.model, "copruning": {**checkpoint.model["copruning"], **current_thresholds(model)}}
    return save_checkpoint(checkpoint.replace(model=spec, extras={**checkpoint.extras, **record}), out)


register_checkpoint_kind(KIND, build_model=build_copruned_model, build_network=build_copruned_network)
