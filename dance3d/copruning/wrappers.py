"""Pick the co-pruning wrapper for a dense forecaster by its type."""

from __future__ import annotations

import torch.nn as nn

from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.convlstm import CoprunedConvLSTM
from dance3d.copruning.model import CoprunedSimVP
from dance3d.copruning.transformer import CoprunedSTFormer
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import ConvLSTMForecaster, SimVP, SpatioTemporalTransformer

WRAPPERS: dict[type[nn.Module], type[CoprunedForecaster]] = {
    SimVP: CoprunedSimVP,
    SpatioTemporalTransformer: CoprunedSTFormer,
    ConvLSTMForecaster: CoprunedConvLSTM,
}


def coprune_model(backbone: nn.Module, config: CopruneConfig) -> CoprunedForecaster:
    """``backbone`` wrapped for co-pruning: SimVP or ConvLSTM kept positions, or Transformer token dropping."""
    for kind, wrapper in WRAPPERS.items():
        if isinstance(backbone, kind):
            return wrapper(backbone, config)
    raise ConfigError(
        "co-pruning is built for SimVP, the spatio-temporal Transformer and the ConvLSTM, "
        f"not {type(backbone).__name__}"
    )
