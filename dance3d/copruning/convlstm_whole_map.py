"""The whole-map path of a co-pruned ConvLSTM's compact execution: whole maps, sliced hidden channels.

One sample runs every conv over the whole map, as the dense backbone does, with its skipped tiles
masked (their state stays 0, their forecast is persistence; group norms take statistics over the
kept positions), and each cell's gate conv sliced to the sample's kept hidden channels once its
first step has decided them: the 4 gate rows and the recurrent columns of a kept channel only, and
the next layer reads the kept channels only. It computes every position, so it pays where the
tiled path's gathers cost more than the skipped tiles save: always when every tile is
kept (the same positions, no gathers), and from a measured break-even otherwise
(:mod:`dance3d.copruning.fallback`). Outputs equal :meth:`CoprunedConvLSTM._simulate` in eval mode
up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.convlstm_compact import CellSteps
from dance3d.copruning.generator import LATENT_STRIDE
from dance3d.copruning.model import conv_norm_act, masked, per_frame
from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones.common import pad_to_multiple


class WholeMapRun(CellSteps):
    """One sample's cells on whole latent maps: ``weight`` (1, 1, h, w) its ``S`` (0 where skipped),
    ``positions`` (1, 1, h, w) its kept positions (None: all)."""

    def __init__(self, model: nn.Module, weight: torch.Tensor, positions: torch.Tensor | None) -> None:
        super().__init__(model)
        self.weight, self.positions = weight, positions

    def gates(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cell: nn.Module) -> torch.Tensor:
        return F.conv2d(x, weight, bias, padding=cell.gates.padding)

    def decision_maps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h, self.weight

    def keep(self, c: torch.Tensor) -> torch.Tensor:
        return masked(c, self.positions)


def sample_whole_map(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """One sample (1, t_in, C, H, W) on whole maps, ``scores`` (1, h, w) its ``S``, ``tiles`` (1, rows * cols)
    its kept tiles: (forecast (1, t_out, C, H, W), each cell's kept channels (1, hidden), or None)."""
    bb = model.backbone
    t_in, t_out = bb.t_in, bb.t_out
    everything = bool(tiles.all())
    m0, m1, m2 = (None if everything else position_mask(tiles, grid, scale) for scale in (1, 2, 4))
    frames, (height, width) = pad_to_multiple(x.flatten(0, 1), LATENT_STRIDE)
    run = WholeMapRun(model, masked(scores[:, None], m0), m0)

    def encode(batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        half = conv_norm_act(bb.encoder[0], batch, per_frame(m1, count))
        return conv_norm_act(bb.encoder[1], half, per_frame(m0, count))

    encoded = encode(frames)  # every input frame at once: the norms are per frame
    for t in range(t_in):
        hidden = run.step(encoded[t : t + 1])
    previous, outputs = frames[-1:], []
    for t in range(t_out):
        if t:
            hidden = run.step(encode(previous))
        up, stage = bb.decoder[0]
        decoded = conv_norm_act(stage, up(hidden), m1, columns=run.cells[-1].kept)
        up, stage = bb.decoder[1]
        decoded = conv_norm_act(stage, up(decoded), m2)
        previous = previous + masked(bb.head(decoded), m2)
        outputs.append(previous[..., :height, :width])
    return torch.stack(outputs, dim=1), run.channel_masks(x)


__all__ = ["sample_whole_map"]
