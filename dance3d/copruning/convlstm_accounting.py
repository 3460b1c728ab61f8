"""Per-sample MACs of a co-pruned ConvLSTM forecaster, from its kept positions and kept hidden channels.

With ``K`` of the ``N`` latent positions kept (the same ones at every step) a sample computes, per
kept latent position: the encoder (its stride-2 conv at the 4 half-resolution positions above it and
its second conv) once per encoded frame (``t_in`` inputs and ``t_out - 1`` fed-back predictions);
each cell's 3 x 3 gate conv once per step; the decoder (its first conv at 4 half-resolution
positions, its second conv and the 1 x 1 head at 16 full-resolution positions) once per output
step. A cell with ``n`` of its ``hidden`` channels kept computes at its first step all ``4 hidden``
gate rows from the input columns only (the state is zero; the rows of channels then pruned are the
channel decision's cost) and at every later step the ``4 n`` rows of its kept channels from its
input's kept columns and its ``n`` kept recurrent columns; the decoder's first conv reads the last
cell's ``n`` kept channels. Pruned positions cost nothing (their forecast is persistence).

The count is exact for what compact execution runs when the tiles divide the latent map (a test
counts a compact forward with :func:`profiling.count_macs`). With everything kept it is the dense
backbone's counted MACs less the first step's recurrent columns, which multiply a zero state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from dance3d.models.forecast_backbones import ConvLSTMForecaster


def conv_macs_per_position(conv: nn.Conv2d, *, in_channels: int | None = None) -> int:
    """MACs of one output position of ``conv`` (optionally reading only ``in_channels`` of its inputs)."""
    reads = conv.in_channels // conv.groups if in_channels is None else in_channels
    return reads * conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels


@dataclass(frozen=True)
class ConvLSTMMacs:
    """What a co-pruned ConvLSTM sample costs as a function of its kept positions and hidden channels."""

    positions: int  # N: latent positions of the (padded) input
    encoded_frames: int  # t_in + t_out - 1
    outputs: int  # t_out
    encoder_per_position: int  # both encoder convs, per latent position and frame
    cell_inputs: int  # the first cell's input width (the encoder's features)
    hidden: tuple[int, ...]  # each cell's full hidden width
    gate_kernel_area: tuple[int, ...]  # each cell's gate-conv kernel area
    decoder_per_channel: int  # the decoder's first conv per latent position, per kept channel of the last cell
    decoder_fixed: int  # the decoder's second conv and the head, per latent position

    def macs(self, kept_positions: torch.Tensor, kept_channels: list[torch.Tensor] | None) -> torch.Tensor:
        """(B,) MACs for ``kept_positions`` (B,) and each cell's kept hidden-channel count (B,) (None: all)."""
        steps = self.encoded_frames
        per_position = kept_positions.new_full(kept_positions.shape, float(steps * self.encoder_per_position))
        inputs = kept_positions.new_full(kept_positions.shape, float(self.cell_inputs))
        for index, (width, area) in enumerate(zip(self.hidden, self.gate_kernel_area, strict=True)):
            kept = inputs.new_full(inputs.shape, float(width)) if kept_channels is None else kept_channels[index]
            first = area * 4 * width * inputs
            later = (steps - 1) * area * 4 * kept * (inputs + kept)
            per_position = per_position + first + later
            inputs = kept
        per_position = per_position + self.outputs * (self.decoder_per_channel * inputs + self.decoder_fixed)
        return kept_positions * per_position

    def first_step_recurrent(self) -> int:
        """MACs the dense backbone spends on the first step's recurrent columns (a zero state), per sample."""
        return self.positions * sum(a * 4 * w * w for w, a in zip(self.hidden, self.gate_kernel_area, strict=True))


def convlstm_macs(backbone: ConvLSTMForecaster, *, height: int, width: int) -> ConvLSTMMacs:
    """The :class:`ConvLSTMMacs` of ``backbone`` on (padded) inputs of ``height x width`` pixels."""
    enc0, enc1 = backbone.encoder[0][0], backbone.encoder[1][0]
    dec0, dec1 = backbone.decoder[0][1][0], backbone.decoder[1][1][0]
    gates = [cell.gates for cell in backbone.cells]
    return ConvLSTMMacs(
        positions=(height // 4) * (width // 4),
        encoded_frames=backbone.t_in + backbone.t_out - 1,
        outputs=backbone.t_out,
        encoder_per_position=4 * conv_macs_per_position(enc0) + conv_macs_per_position(enc1),
        cell_inputs=enc1.out_channels,
        hidden=tuple(cell.hidden for cell in backbone.cells),
        gate_kernel_area=tuple(g.kernel_size[0] * g.kernel_size[1] for g in gates),
        decoder_per_channel=4 * conv_macs_per_position(dec0, in_channels=1),
        decoder_fixed=16 * (conv_macs_per_position(dec1) + conv_macs_per_position(backbone.head)),
    )


__all__ = ["ConvLSTMMacs", "conv_macs_per_position", "convlstm_macs"]
