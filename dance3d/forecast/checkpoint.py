"""Forecast checkpoints (kind ``forecast``): a zoo forecaster, its weights and its data settings.

The trainer writes them like dense checkpoints (atomic, resumable); ``classes`` holds the
variables the model forecasts and ``model.options`` its ``t_in`` / ``t_out``.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from dance3d.checkpoint import Checkpoint, register_checkpoint_kind
from dance3d.errors import CheckpointError
from dance3d.forecast.task import KIND as FORECAST
from dance3d.models import model_info
from dance3d.models.checkpoint import build_zoo_network


def build_forecaster(spec: dict[str, Any]) -> nn.Module:
    """The zoo forecaster of ``spec`` with fresh weights (refuses a spec that names no forecaster)."""
    if model_info(spec["name"]).family != "forecast":
        raise CheckpointError(f"a forecast checkpoint holds {spec['name']!r}, which is not a forecaster")
    return build_zoo_network(spec)


def build_forecast_model(checkpoint: Checkpoint) -> nn.Module:
    """Rebuild the forecaster and load its weights."""
    model = build_forecaster(checkpoint.model)
    model.load_state_dict(checkpoint.state_dict)
    return model


register_checkpoint_kind(FORECAST, build_model=build_forecast_model, build_network=build_forecaster)


def frames(checkpoint: dict[str, Any]) -> tuple[int, int]:
    """(t_in, t_out) the checkpoint's forecaster was built for."""
    options = checkpoint["model"].get("options", {})
    return int(options["t_in"]), int(options["t_out"])
