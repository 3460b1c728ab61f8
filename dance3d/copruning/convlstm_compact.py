"""Compact execution of a co-pruned ConvLSTM: each sample runs its kept tiles and kept hidden channels only.

Samples run one at a time (the batch loop, and the whole-map path a sample that keeps every tile
takes instead: :meth:`CoprunedConvLSTM._compact`). Every conv (the encoder's two, each cell's gate conv at each of the
``t_in + t_out - 1`` steps, the decoder's two and the head) gathers its kept output tiles' input
regions with halo (:class:`~dance3d.copruning.tiles.TileIndex`) from a map that is zero outside the
kept tiles (the input frames excepted: they exist everywhere), runs on the stack of regions and is
scattered back only where the next conv needs neighbours; group norms take their statistics over
the kept tiles. A cell's state ``(h, c)`` lives on the kept tiles. Its first step runs every gate
row from the input columns alone (the state is zero) and decides the cell's kept channels; later
steps slice the gate conv to the kept channels' 4 gate rows and to the kept input and recurrent
columns, and the next layer reads only the kept channels. The predicted change is scattered into a
zero map, so the prediction fed back through the encoder, and the forecast, equal the last input
frame at pruned positions. The decoder's 2x bilinear upsampling is applied to whole maps (it has no
MACs). A sample with no kept tile costs the mask generator alone: its forecast is persistence.
Outputs equal :meth:`CoprunedConvLSTM._simulate` in eval mode up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.tiles import TileIndex, tile_group_norm
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


def tile_conv(
    conv: nn.Conv2d, tiles: TileIndex, x: torch.Tensor, *, scale: int, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv`` at the kept output tiles (at ``scale`` x the latent grid) of the map ``x`` (N, C, H, W), whose
    channels are ``conv``'s input ``columns`` (all when None)."""
    regions = tiles.gather(x, scale=scale, kernel=conv.kernel_size[0], stride=conv.stride[0], padding=conv.padding[0])
    weight = conv.weight if columns is None else conv.weight[:, columns]
    return F.conv2d(regions, weight, conv.bias, stride=conv.stride)


def tile_conv_norm_act(
    stage: nn.Sequential, tiles: TileIndex, x: torch.Tensor, *, scale: int, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """A ``conv -> GroupNorm -> activation`` stage at the kept tiles, norm statistics per frame over them."""
    conv, norm, act = stage
    out = tile_conv(conv, tiles, x, scale=scale, columns=columns)
    size = (x.shape[-2] // conv.stride[0], x.shape[-1] // conv.stride[0])
    valid = tiles.valid(scale=scale, size=size, device=x.device)
    return act(tile_group_norm(out, norm, frames=x.shape[0], valid=valid))


def as_map(tiles: torch.Tensor) -> torch.Tensor:
    """(K, C, th, tw) kept tiles as one (1, C, K * th, tw) map: position sums and means see the same values."""
    return tiles.transpose(0, 1).reshape(1, tiles.shape[1], -1, tiles.shape[-1])


@dataclass
class TileCell:
    """One cell's state on a sample's kept tiles and, once decided, its kept channels and sliced gate conv."""

    h: torch.Tensor | None = None  # (K, kept, th, tw)
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
    """One sample's compact forward: its kept tiles, its ``S`` on them, its cells' states on them."""

    def __init__(self, model: nn.Module, scores: torch.Tensor, tiles: TileIndex, latent: tuple[int, int]) -> None:
        super().__init__(model)
        self.tiles, self.latent = tiles, latent
        th, tw = tiles.tile_shape(1)
        self.weight = tiles.gather(scores[None, None], scale=1).reshape(len(tiles), 1, th, tw)  # 0 outside the map

    def encode(self, frames: torch.Tensor, half: tuple[int, int]) -> torch.Tensor:
        """(N, C, H, W) whole frames -> (N * K, features, th, tw) encodings of the kept tiles."""
        bb, tiles = self.model.backbone, self.tiles
        out = tile_conv_norm_act(bb.encoder[0], tiles, frames, scale=2)
        out = tiles.scatter(out, frames=frames.shape[0], scale=2, size=half)
        return tile_conv_norm_act(bb.encoder[1], tiles, out, scale=1)

    def gates(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cell: nn.Module) -> torch.Tensor:
        full = self.tiles.scatter(x, frames=1, scale=1, size=self.latent)
        regions = self.tiles.gather(full, scale=1, kernel=cell.gates.kernel_size[0], padding=cell.gates.padding[0])
        return F.conv2d(regions, weight, bias)

    def decision_maps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return as_map(h), as_map(self.weight)


def sample_tiled(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
    """One sample (1, t_in, C, H, W) on its kept tiles ``kept`` (rows * cols,), ``scores`` (h, w) its ``S``:
    (forecast (1, t_out, C, H, W), kept channels per cell or None)."""
    bb = model.backbone
    t_in, t_out = bb.t_in, bb.t_out
    tiles = TileIndex(kept, grid)
    if len(tiles) == 0:  # nothing to compute: persistence
        channels = [None] * len(model.cells) if model.config.model_mask else None
        return x[:, -1:].expand(-1, t_out, -1, -1, -1).clone(), channels
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), 4)
    full = tuple(frames.shape[-2:])
    half = (full[0] // 2, full[1] // 2)
    run = SampleRun(model, scores, tiles, (grid.height, grid.width))
    encoded = run.encode(frames, half)
    encoded = encoded.reshape(t_in, len(tiles), *encoded.shape[1:])
    for t in range(t_in):
        hidden = run.step(encoded[t])
    previous, outputs = frames[-1:], []
    for t in range(t_out):
        if t:
            hidden = run.step(run.encode(previous, half))
        latent = tiles.scatter(hidden, frames=1, scale=1, size=(grid.height, grid.width))
        up, stage = bb.decoder[0]
        decoded = tile_conv_norm_act(stage, tiles, up(latent), scale=2, columns=run.cells[-1].kept)
        up, stage = bb.decoder[1]
        decoded = tile_conv_norm_act(stage, tiles, up(tiles.scatter(decoded, frames=1, scale=2, size=half)), scale=4)
        delta = F.conv2d(decoded, bb.head.weight, bb.head.bias)
        previous = previous + tiles.scatter(delta, frames=1, scale=4, size=full)
        outputs.append(previous[..., :height, :width])
    return torch.stack(outputs, dim=1), run.channel_masks(x)
