"""ConvLSTM encoder-forecaster: a downsampling frame encoder, stacked ConvLSTM cells, a decoder.

The cells read the ``t_in`` input frames, then run ``t_out`` more steps, each fed with the
encoding of the previous prediction (autoregressive); each step predicts the change from the
previous frame.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dance3d.models.forecast_backbones.common import (
    check_inputs,
    conv_norm_act,
    pad_to_multiple,
    up_conv_norm_act,
    zero_init,
)


class ConvLSTMCell(nn.Module):
    def __init__(self, in_channels: int, hidden: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMForecaster(nn.Module):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W); any H, W (padded to a multiple of 4 inside)."""

    def __init__(
        self, channels: int, *, t_in: int, t_out: int, hidden: tuple[int, ...] = (32,), features: int = 16
    ) -> None:
        super().__init__()
        if min(channels, t_in, t_out, features, *hidden) < 1 or not hidden:
            raise ValueError("channels, t_in, t_out, features and hidden widths must be >= 1")
        self.channels, self.t_in, self.t_out = channels, t_in, t_out
        self.encoder = nn.Sequential(conv_norm_act(channels, features // 2, stride=2),
                                     conv_norm_act(features // 2, features, stride=2))  # fmt: skip
        widths = (features, *hidden)
        self.cells = nn.ModuleList(ConvLSTMCell(widths[i], widths[i + 1]) for i in range(len(hidden)))
        self.decoder = nn.Sequential(up_conv_norm_act(hidden[-1], features), up_conv_norm_act(features, features // 2))
        self.head = zero_init(nn.Conv2d(features // 2, channels, 1))

    def _step(self, frame: torch.Tensor, states: list) -> torch.Tensor:
        x = self.encoder(frame)
        for index, cell in enumerate(self.cells):
            states[index] = cell(x, states[index])
            x = states[index][0]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, t_in=self.t_in, channels=self.channels)
        height, width = x.shape[-2:]
        frames, _ = pad_to_multiple(x.flatten(0, 1), 4)
        frames = frames.reshape(x.shape[0], self.t_in, *frames.shape[1:])
        states: list = [None] * len(self.cells)
        for t in range(self.t_in):
            hidden = self._step(frames[:, t], states)
        previous = frames[:, -1]
        outputs = []
        for t in range(self.t_out):
            if t:
                hidden = self._step(previous, states)
            previous = previous + self.head(self.decoder(hidden))
            outputs.append(previous[..., :height, :width])
        return torch.stack(outputs, dim=1)
