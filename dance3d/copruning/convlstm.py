"""The co-pruned ConvLSTM forecaster: the recurrent update runs on kept tiles and kept hidden channels only.

The backbone (:class:`~dance3d.models.forecast_backbones.ConvLSTMForecaster`) encodes each frame to
1/4 resolution, where its ConvLSTM cells run: the grid on which the mask generator gives ``S``.
Per sample, ``S`` decides:

* **the data mask**: tiles of ``tile_size`` pixels (``tile_size / 4`` latent cells a side) whose
  mean ``S`` exceeds ``data_threshold``, the same tiles at every one of the ``t_in + t_out - 1``
  steps and at every resolution (the encoder's and decoder's 1/2 and full-resolution maps). At a
  pruned position the cells never update (``h`` and ``c`` stay 0) and the decoder and head predict
  no change: the forecast there is **persistence** of the last input frame, at a cost of 0 MACs.
  The encoder, the cells, the decoder and the head compute the kept positions only; their group
  norms take statistics over the kept positions.
* **the model mask**: each cell's hidden channels, decided at the cell's first step. The first step
  runs every gate row (the state is zero); a hidden channel's importance is the ``S``-weighted mean of
  ``|h|`` over the kept positions after that step, times the norm of the weights that read the channel
  (the cell's own recurrent columns and the next layer's input columns: the next cell's gate conv or
  the decoder's first conv), divided by the sample's largest; the channel is kept when that exceeds
  ``channel_threshold``. A pruned channel keeps ``h = 0`` and ``c = 0`` from then on: its 4 gate rows
  and its recurrent columns are skipped at every later step, and so are its columns in the next
  layer. Both masks read the same ``S``, so a region ``S`` calls calm is skipped and casts no vote.

``simulate`` applies the masks to dense tensors (the reference numerics; soft straight-through
masks in ``train()`` mode); ``compact`` (:mod:`dance3d.copruning.convlstm_compact`) runs every conv
on the kept tiles and channels only, and gives the same outputs. A sample that keeps every tile,
or (with a measured ``fallback`` table, :mod:`dance3d.copruning.fallback`) enough of them, runs on
whole maps with each cell sliced to its kept channels instead
(:mod:`dance3d.copruning.convlstm_whole_map`), and is charged every position. The autoregressive
steps feed the previous prediction back through the encoder: at pruned positions it is the last
input frame.
With every tile and channel kept, ``simulate`` is the dense backbone exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dance3d.copruning.accounting import dense_layer_macs
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.convlstm_accounting import ConvLSTMMacs, convlstm_macs
from dance3d.copruning.convlstm_compact import sample_tiled
from dance3d.copruning.convlstm_whole_map import sample_whole_map
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.fallback import WholeMapFallback, compact_with_fallback
from dance3d.copruning.generator import LATENT_STRIDE
from dance3d.copruning.masks import model_mask, relative_to_largest, weighted_mean
from dance3d.copruning.model import conv_norm_act, masked
from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import ConvLSTMForecaster
from dance3d.models.forecast_backbones.common import pad_to_multiple

State = tuple[torch.Tensor, torch.Tensor]


def combine(position: torch.Tensor | None, channels: torch.Tensor | None) -> torch.Tensor | None:
    """The product of a position mask (B, 1, h, w) and a channel mask (B, C), either possibly None."""
    if channels is None:
        return position
    channels = channels[:, :, None, None]
    return channels if position is None else channels * position


class CoprunedConvLSTM(CoprunedForecaster, WholeMapFallback):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W), skipping calm tiles and unneeded hidden channels per sample
    (the records a forward leaves: :class:`~dance3d.copruning.base.CoprunedForecaster`)."""

    def __init__(self, backbone: ConvLSTMForecaster, config: CopruneConfig) -> None:
        if not isinstance(backbone, ConvLSTMForecaster):
            raise ConfigError(f"CoprunedConvLSTM wraps a ConvLSTMForecaster, got {type(backbone).__name__}")
        super().__init__(backbone, config)
        self.whole_map_when_all_kept = True  # the whole-map path slices channels: nothing more to compute
        self._costs: dict[tuple[int, ...], tuple[ConvLSTMMacs, int, int]] = {}

    @property
    def cells(self) -> list[nn.Module]:
        return list(self.backbone.cells)

    def reader_norms(self, index: int) -> torch.Tensor:
        """(hidden,) norm of the weights that read each hidden channel of cell ``index``: its recurrent gate
        columns and the next layer's input columns (the next cell's gate conv, or the decoder's first conv)."""
        cells = self.cells
        own = cells[index].gates.weight[:, -cells[index].hidden :]
        if index + 1 < len(cells):
            reader = cells[index + 1].gates.weight[:, : cells[index].hidden]
        else:
            reader = self.backbone.decoder[0][1][0].weight
        return (own.pow(2).sum(dim=(0, 2, 3)) + reader.pow(2).sum(dim=(0, 2, 3))).sqrt()

    def decide_channels(self, h: torch.Tensor, weight: torch.Tensor, index: int, *, soft: bool) -> torch.Tensor | None:
        """Cell ``index``'s hidden-channel mask (B, hidden) from its first step's output ``h`` (B, hidden, h, w)
        and the ``S``-weights ``weight`` (B, 1, h, w), zero at pruned positions; None when the model mask is off."""
        if not self.config.model_mask:
            return None
        importance = relative_to_largest(weighted_mean(h.abs(), weight) * self.reader_norms(index))
        return model_mask(importance, self.config, soft=soft)

    def _simulate(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        bb, soft = self.backbone, self.training
        batch = x.shape[0]
        tiles = self.decide_tiles(scores, grid, soft=soft)
        everything = not soft and bool(tiles.all())
        m0, m1, m2 = (None if everything else position_mask(tiles, grid, scale) for scale in (1, 2, 4))
        frames, (height, width) = pad_to_multiple(x.flatten(0, 1), LATENT_STRIDE)
        frames = frames.reshape(batch, bb.t_in, *frames.shape[1:])
        weight = masked(scores[:, None], m0)
        states: list[State | None] = [None] * len(self.cells)
        channels: list[torch.Tensor | None] = [None] * len(self.cells)

        def step(frame: torch.Tensor) -> torch.Tensor:
            z = conv_norm_act(bb.encoder[1], conv_norm_act(bb.encoder[0], frame, m1), m0)
            for index in range(len(self.cells)):
                z = self._cell(index, z, states, channels, m0, weight, soft=soft)
            return z

        for t in range(bb.t_in):
            hidden = step(frames[:, t])
        previous, outputs = frames[:, -1], []
        for t in range(bb.t_out):
            if t:
                hidden = step(previous)
            up, stage = bb.decoder[0]
            decoded = conv_norm_act(stage, up(hidden), m1)
            up, stage = bb.decoder[1]
            decoded = conv_norm_act(stage, up(decoded), m2)
            previous = previous + masked(bb.head(decoded), m2)
            outputs.append(previous[..., :height, :width])
        kept = channels if self.config.model_mask else None
        return torch.stack(outputs, dim=1), Decisions(grid, tiles, kept)

    def _cell(
        self,
        index: int,
        x: torch.Tensor,
        states: list[State | None],
        channels: list[torch.Tensor | None],
        positions: torch.Tensor | None,
        weight: torch.Tensor,
        *,
        soft: bool,
    ) -> torch.Tensor:
        """One step of cell ``index`` on dense maps: ``c`` (and so ``h``) zeroed at pruned positions and channels;
        at the cell's first step its channel mask is decided. Returns the new ``h``."""
        cell = self.cells[index]
        state = states[index]
        if state is None:
            zeros = x.new_zeros(x.shape[0], cell.hidden, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = cell.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if states[index] is None:
            channels[index] = self.decide_channels(torch.sigmoid(o) * torch.tanh(c), weight, index, soft=soft)
        c = masked(c, combine(positions, channels[index]))
        h = torch.sigmoid(o) * torch.tanh(c)
        states[index] = (h, c)
        return h

    def _compact(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        tiles = self.decide_tiles(scores, grid, soft=False)
        hidden = [cell.hidden for cell in self.cells] if self.config.model_mask else None
        return compact_with_fallback(self, x, scores, grid, tiles, hidden)

    def tiled_sample(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor):  # noqa: ANN201
        return sample_tiled(self, x, scores, grid, kept)

    def whole_map_sample(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor):  # noqa: ANN201
        return sample_whole_map(self, x, scores, grid, tiles)

    def costs(self, x: torch.Tensor) -> tuple[ConvLSTMMacs, int, int]:
        """(the MAC model, the dense backbone's counted MACs, the generator's MACs) per sample shaped like ``x``."""
        key = tuple(x.shape[1:])
        if key not in self._costs:
            sample = x[:1].detach()
            height, width = (-(-size // LATENT_STRIDE) * LATENT_STRIDE for size in x.shape[-2:])
            model = convlstm_macs(self.backbone, height=height, width=width)
            counted = dense_layer_macs(self.backbone, sample).total
            self._costs[key] = (model, counted, dense_layer_macs(self.generator, sample).total)
        return self._costs[key]

    def dense_total_macs(self, x: torch.Tensor) -> int:
        return self.costs(x)[1]

    def mac_fraction_at(self, x: torch.Tensor, position_fraction: float) -> float:
        """The MAC fraction of keeping ``position_fraction`` of the positions and every channel (no generator)."""
        model, dense, _ = self.costs(x)
        kept = torch.tensor([position_fraction * model.positions], dtype=torch.float64)
        return float(model.macs(kept, None)) / dense

    def _account(self, x: torch.Tensor, decisions: Decisions) -> None:
        model, dense, generator_macs = self.costs(x)
        kept = decisions.position_fraction() * model.positions
        if decisions.whole_map is not None:  # the whole-map path computes every position
            kept = torch.where(decisions.whole_map, torch.full_like(kept, float(model.positions)), kept)
        channels = None if decisions.channels is None else [c.sum(dim=1) for c in decisions.channels]
        macs = model.macs(kept, channels) + generator_macs
        self.last_decisions, self.last_macs = decisions, macs
        self.last_mac_fraction = macs / dense


__all__ = ["CoprunedConvLSTM"]
