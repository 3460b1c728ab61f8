"""The mask generator: one importance map ``S`` per sample, from cheap statistics of its input frames.

Per pixel it reads the last input frame, the mean absolute change between consecutive frames and
the standard deviation over time (``3 C`` features), average-pools them to the forecaster's latent
resolution (1/4), and maps them with a 3x3 conv, GELU and a 1x1 conv to ``S = sigmoid(logits)`` in
(0, 1): high where something happens, low over calm regions. Its MACs are a few thousandths of
the SimVP forecaster's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.models.forecast_backbones.common import pad_to_multiple

LATENT_STRIDE = 4  # the SimVP latent map is 1/4 of the (padded) input
INITIAL_BIAS = 1.0  # S starts near sigmoid(1) = 0.73 everywhere: above the default thresholds, all kept


def frame_features(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, 3C, H, W): last frame, mean |frame-to-frame change|, std over time.

    The std is written as the root of the mean squared deviation: ``Tensor.std`` over the frame axis
    takes about 0.5 ms on one 6 x 64 x 64 sample on CPU, as long as the rest of the generator together.
    """
    change = (x[:, 1:] - x[:, :-1]).abs().mean(dim=1) if x.shape[1] > 1 else torch.zeros_like(x[:, 0])
    spread = (x - x.mean(dim=1, keepdim=True)).square().mean(dim=1).sqrt()
    return torch.cat([x[:, -1], change, spread], dim=1)


class MaskGenerator(nn.Module):
    """(B, T, C, H, W) -> importance ``S`` (B, h, w) on the latent grid of the padded input."""

    def __init__(self, channels: int, *, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Conv2d(3 * channels, width, 3, padding=1)
        self.score = nn.Conv2d(width, 1, 1)
        nn.init.constant_(self.score.bias, INITIAL_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, _ = pad_to_multiple(frame_features(x), LATENT_STRIDE)
        pooled = F.avg_pool2d(features, LATENT_STRIDE)
        return torch.sigmoid(self.score(F.gelu(self.features(pooled))))[:, 0]
