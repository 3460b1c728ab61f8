"""Forecasting backbones in the zoo (family ``forecast``).

For a forecaster, ``num_classes`` is the number of field variables (channels) it reads and
predicts; ``t_in`` / ``t_out`` are its input and output frame counts. Each has a ``-test``
variant small enough for unit tests.
"""

from __future__ import annotations

import torch.nn as nn

from dance3d.models.forecast_backbones import ConvLSTMForecaster, SimVP, SpatioTemporalTransformer
from dance3d.models.registry import register_model

FAMILY = "forecast"
DEFAULT_CLIP = (6, 32, 32)  # (t_in, height, width) of the storms dataset


@register_model("simvp-tiny", family=FAMILY, default_clip=DEFAULT_CLIP, description="SimVP-style CNN forecaster")
def simvp_tiny(num_classes: int, *, t_in: int = 6, t_out: int = 6, **kwargs: int) -> nn.Module:
    return SimVP(num_classes, t_in=t_in, t_out=t_out, **kwargs)


@register_model("simvp-test", family=FAMILY, default_clip=DEFAULT_CLIP, description="SimVP, unit-test size")
def simvp_test(num_classes: int, *, t_in: int = 6, t_out: int = 6) -> nn.Module:
    return SimVP(num_classes, t_in=t_in, t_out=t_out, hidden_spatial=8, hidden_temporal=16, translator_blocks=1)


@register_model("convlstm-tiny", family=FAMILY, default_clip=DEFAULT_CLIP, description="ConvLSTM encoder-forecaster")
def convlstm_tiny(num_classes: int, *, t_in: int = 6, t_out: int = 6, **kwargs: object) -> nn.Module:
    return ConvLSTMForecaster(num_classes, t_in=t_in, t_out=t_out, **kwargs)


@register_model("convlstm-test", family=FAMILY, default_clip=DEFAULT_CLIP, description="ConvLSTM, unit-test size")
def convlstm_test(num_classes: int, *, t_in: int = 6, t_out: int = 6) -> nn.Module:
    return ConvLSTMForecaster(num_classes, t_in=t_in, t_out=t_out, hidden=(8,), features=8)


@register_model(
    "stformer-tiny", family=FAMILY, default_clip=DEFAULT_CLIP, description="spatio-temporal Transformer forecaster"
)
def stformer_tiny(num_classes: int, *, t_in: int = 6, t_out: int = 6, **kwargs: int) -> nn.Module:
    return SpatioTemporalTransformer(num_classes, t_in=t_in, t_out=t_out, **kwargs)


@register_model("stformer-test", family=FAMILY, default_clip=DEFAULT_CLIP, description="ST-Transformer, unit-test size")
def stformer_test(num_classes: int, *, t_in: int = 6, t_out: int = 6) -> nn.Module:
    return SpatioTemporalTransformer(num_classes, t_in=t_in, t_out=t_out, dim=16, depth=1, heads=2)
