"""Compact execution of a co-pruned ConvLSTM: each sample runs its kept tiles and kept hidden channels only.

Samples run one at a time (the batch loop, and the whole-map path a sample that keeps every tile
takes instead: :meth:`CoprunedConvLSTM._compact`). Every feature map is held as its values at the
sample's kept positions (:mod:`dance3d.copruning.kept_positions`), so every conv (the encoder's
two, each cell's gate conv at each of the ``t_in + t_out - 1`` steps, the decoder's two and the
head) gathers the positions its taps read (zero where nothing was computed; the input frames exist
everywhere) and computes the kept positions only; group norms take their statistics over them. A
cell's state ``(h, c)`` lives on the kept positions. Its first step runs every gate row from the
input columns alone (the state is zero) and decides the cell's kept channels; later steps slice the
gate conv to the kept channels' 4 gate rows and to the kept input and recurrent columns, and the
next layer reads only the kept channels. The predicted change is scattered into a zero map, so the
prediction fed back through the encoder, and the forecast, equal the last input frame at pruned
positions. The decoder's 2x bilinear upsampling (no MACs) is computed only where its conv reads. A
sample with no kept tile costs the mask generator alone: its forecast is persistence. Outputs equal
:meth:`CoprunedConvLSTM._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from dance3d.copruning.kept_positions import (
    KeptPositions,
    conv_norm_act_rows,
    kept_at_scales,
    linear_rows,
    map_rows,
    up_conv_norm_act_rows,
    weight_conv_rows,
)
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


@dataclass
class TileCell:
    """One cell's state on a sample's kept tiles and, once decided, its kept channels and sliced gate conv."""

    h: torch.Tensor | None = None  # (1, kept, ...) on the run's layout of positions
    c: torch.Tensor | None = None
    kept: torch.Tensor | None = None  # indices of the kept hidden channels
    weight: torch.Tensor | None = None  # gate conv at the kept rows and columns
    bias: torch.Tensor | None = None


class CellSteps:
    """One sample's ConvLSTM cells stepping on some layout of its kept positions; a subclass says how a gate
    conv runs on that layout (``gates``), how the channel decision sees ``h`` and ``S`` (``decision_maps``)
    and where the cell state must be zeroed (``keep``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.cells = [TileCell() for _ in model.cells]

    def gates(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cell: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def decision_maps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(``h``, ``S``-weights) as maps (1, C, ., .) for :meth:`CoprunedConvLSTM.decide_channels`."""
        raise NotImplementedError

    def keep(self, c: torch.Tensor) -> torch.Tensor:
        """``c`` zeroed where nothing is kept (the tiled layout holds kept positions only)."""
        return c

    def step(self, z: torch.Tensor) -> torch.Tensor:
        """Every cell's step on the encoded input ``z``; the last cell's ``h`` (its kept channels)."""
        columns = None  # the first cell reads every encoder channel
        for index, cell in enumerate(self.model.cells):
            state = self.cells[index]
            z = self._first(index, cell, z, columns) if state.kept is None else self._later(cell, state, z)
            columns = state.kept
        return z

    def _first(self, index: int, cell: nn.Module, x: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
        """The cell's first step (zero state): every gate row from the input columns; decides the kept channels."""
        gates = cell.gates
        device = x.device
        inputs = torch.arange(gates.in_channels - cell.hidden, device=device) if columns is None else columns
        i, _, o, g = self.gates(x, gates.weight[:, inputs], gates.bias, cell).chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g)
        mask = self.model.decide_channels(*self.decision_maps(torch.sigmoid(o) * torch.tanh(c)), index, soft=False)
        kept = torch.arange(cell.hidden, device=device) if mask is None else mask[0].nonzero().flatten()
        state = self.cells[index]
        state.kept, state.c = kept, self.keep(c[:, kept])
        state.h = torch.sigmoid(o[:, kept]) * torch.tanh(state.c)
        rows = torch.cat([part * cell.hidden + kept for part in range(4)])
        state.weight = gates.weight[rows][:, torch.cat([inputs, gates.in_channels - cell.hidden + kept])]
        state.bias = gates.bias[rows]
        return state.h

    def _later(self, cell: nn.Module, state: TileCell, x: torch.Tensor) -> torch.Tensor:
        i, f, o, g = self.gates(torch.cat([x, state.h], dim=1), state.weight, state.bias, cell).chunk(4, dim=1)
        state.c = self.keep(torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g))
        state.h = torch.sigmoid(o) * torch.tanh(state.c)
        return state.h

    def channel_masks(self, like: torch.Tensor) -> list[torch.Tensor] | None:
        """Each cell's kept channels as a (1, hidden) 0/1 mask of ``like``'s dtype (None when the model mask is off)."""
        if not self.model.config.model_mask:
            return None
        masks = []
        for cell, state in zip(self.model.cells, self.cells, strict=True):
            mask = like.new_zeros(1, cell.hidden)
            mask[0, state.kept] = 1.0
            masks.append(mask)
        return masks


class SampleRun(CellSteps):
    """One sample's compact forward: its kept positions at each scale, its ``S`` there, its cells' states there
    (held channel-major, (1, C, P), as the cell steps slice channels on dim 1)."""

    def __init__(self, model: nn.Module, scores: torch.Tensor, kept: torch.Tensor, grid: TileGrid) -> None:
        super().__init__(model)
        self.full, self.half, self.latent = kept_at_scales(kept, grid)
        self.weight = scores.flatten()[self.latent.flat].reshape(1, 1, -1, 1)
        self.gate_taps = self.latent.taps(self.latent, model.cells[0].gates)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) whole frames -> (N, features, P) encodings at the kept latent positions."""
        bb = self.model.backbone
        pixels = KeptPositions.whole(*frames.shape[-2:], device=frames.device)
        out = conv_norm_act_rows(bb.encoder[0], map_rows(frames), self.half.taps(pixels, bb.encoder[0][0]))
        out = conv_norm_act_rows(bb.encoder[1], out, self.latent.taps(self.half, bb.encoder[1][0]))
        return out.transpose(1, 2)

    def gates(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cell: nn.Module) -> torch.Tensor:
        return weight_conv_rows(weight, bias, x.transpose(1, 2), self.gate_taps).transpose(1, 2)

    def decision_maps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h[..., None], self.weight

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last cell's ``h`` (1, kept, P) -> the predicted change at the kept full-resolution positions
        (1, P, C)."""
        bb = self.model.backbone
        rows = hidden.transpose(1, 2)
        rows = up_conv_norm_act_rows(bb.decoder[0], rows, self.latent, self.half, columns=self.cells[-1].kept)
        rows = up_conv_norm_act_rows(bb.decoder[1], rows, self.half, self.full)
        return linear_rows(bb.head, rows)


def sample_tiled(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
    """One sample (1, t_in, C, H, W) on its kept tiles ``kept`` (rows * cols,), ``scores`` (h, w) its ``S``:
    (forecast (1, t_out, C, H, W), kept channels per cell or None)."""
    bb = model.backbone
    t_in, t_out = bb.t_in, bb.t_out
    if not bool(kept.any()):  # nothing to compute: persistence
        channels = [None] * len(model.cells) if model.config.model_mask else None
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone(), channels
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), 4)
    run = SampleRun(model, scores, kept, grid)
    encoded = run.encode(frames)  # every input frame at once: the norms are per frame
    for t in range(t_in):
        hidden = run.step(encoded[t : t + 1])
    previous, outputs = frames[-1:], []
    for t in range(t_out):
        if t:
            hidden = run.step(run.encode(previous))
        previous = previous + run.full.scatter(run.decode(hidden))
        outputs.append(previous[..., :height, :width])
    return torch.stack(outputs, dim=1), run.channel_masks(x)
