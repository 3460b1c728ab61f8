"""Forecasting backbones: (B, t_in, C, H, W) -> (B, t_out, C, H, W)."""

from dance3d.forecast.backbones.convlstm import ConvLSTMForecaster
from dance3d.forecast.backbones.simvp import SimVP
from dance3d.forecast.backbones.stformer import SpatioTemporalTransformer

__all__ = ["ConvLSTMForecaster", "SimVP", "SpatioTemporalTransformer"]
