"""Forecasting backbones: (B, t_in, C, H, W) -> (B, t_out, C, H, W)."""

from dance3d.models.forecast_backbones.convlstm import ConvLSTMForecaster
from dance3d.models.forecast_backbones.simvp import SimVP
from dance3d.models.forecast_backbones.stformer import SpatioTemporalTransformer

__all__ = ["ConvLSTMForecaster", "SimVP", "SpatioTemporalTransformer"]
