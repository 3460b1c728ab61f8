"""The co-pruned SimVP forecaster: a mask generator, coupled masks and the dense backbone's weights.

Per sample the generator gives ``S`` on the latent grid; ``S`` decides which tiles every stage
computes (the data mask, the same tiles at 1/4, 1/2 and full resolution) and which hidden channels
of each translator block's MLP run (the model mask). Skipped positions are zero in every feature
map and the forecast there is **persistence**: the last input frame, exactly (the backbone
predicts the change from it, and the change is not computed). Group norms take their statistics
over the kept positions. With every tile and channel kept, the output is the dense backbone's.

Execution modes: ``simulate`` applies the masks to dense tensors (the reference numerics, and the
training path: soft masks with straight-through gradients in ``train()`` mode); ``compact``
(:mod:`dance3d.copruning.compact`) computes only the kept tiles and channels, sample by sample,
and gives the same outputs; with a measured fallback (``fallback``, :mod:`dance3d.copruning.fallback`)
a sample with many kept tiles runs on the whole map instead, and is charged the dense backbone's MACs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.accounting import DenseMacs, GatedLayer, dense_layer_macs, sample_macs
from dance3d.copruning.base import EXECUTION_MODES, CoprunedForecaster
from dance3d.copruning.compact import compact_forward, sample_tiled, sample_whole_map
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.fallback import WholeMapFallback
from dance3d.copruning.generator import LATENT_STRIDE
from dance3d.copruning.masks import channel_importance, model_mask, weighted_mean
from dance3d.copruning.tiles import group_norm, position_mask
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import SimVP
from dance3d.models.forecast_backbones.common import pad_to_multiple


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


def conv_norm_act(
    stage: nn.Sequential, x: torch.Tensor, mask: torch.Tensor | None, *, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """A ``conv -> GroupNorm -> activation`` stage with norm statistics over the kept positions, zero elsewhere;
    with ``columns``, ``x`` holds only those input channels of the conv (the others are zero and skipped)."""
    conv, norm, act = stage
    if columns is None:
        out = conv(x)
    else:
        out = F.conv2d(x, conv.weight[:, columns], conv.bias, stride=conv.stride, padding=conv.padding)
    return masked(act(group_norm(out, norm, mask)), mask)


def per_frame(mask: torch.Tensor | None, frames: int) -> torch.Tensor | None:
    """A per-sample mask (B, 1, h, w) repeated for each of a sample's frames (B * frames, 1, h, w)."""
    return None if mask is None else mask.repeat_interleave(frames, dim=0)


class CoprunedSimVP(CoprunedForecaster, WholeMapFallback):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W), skipping calm tiles and unneeded channels per sample
    (the records a forward leaves: :class:`~dance3d.copruning.base.CoprunedForecaster`)."""

    def __init__(self, backbone: SimVP, config: CopruneConfig) -> None:
        if not isinstance(backbone, SimVP):
            raise ConfigError(f"CoprunedSimVP wraps a SimVP forecaster, got {type(backbone).__name__}")
        super().__init__(backbone, config)
        self._dense: dict[tuple[int, ...], tuple[DenseMacs, int]] = {}

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.backbone.translator[1:-1])

    def _compact(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        return compact_forward(self, x, scores, grid)

    def tiled_sample(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor):  # noqa: ANN201
        return sample_tiled(self, x, scores, grid, kept)

    def whole_map_sample(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor):  # noqa: ANN201
        return sample_whole_map(self, x, scores, grid, tiles)

    def decide_channels(
        self, z: torch.Tensor, weight: torch.Tensor, block: nn.Module, *, soft: bool
    ) -> torch.Tensor | None:
        """A block's hidden-channel mask from its normalised input ``z`` and the ``S``-weights ``weight``."""
        if not self.config.model_mask:
            return None
        importance = channel_importance(weighted_mean(z, weight), block.mlp[0], block.mlp[2])
        return model_mask(importance, self.config, soft=soft)

    def _simulate(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        return self.masked_forward(x, scores, grid, self.decide_tiles(scores, grid, soft=self.training))

    def masked_forward(
        self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor
    ) -> tuple[torch.Tensor, Decisions]:
        """The backbone on whole maps with the tile mask ``tiles`` (B, rows * cols) applied: the reference
        numerics, and compact execution's whole-map path for samples where tiles do not pay."""
        bb, soft = self.backbone, self.training
        batch, t_in, t_out = x.shape[0], bb.t_in, bb.t_out
        everything = not soft and bool(tiles.all())
        m0, m1, m2 = (None if everything else position_mask(tiles, grid, scale) for scale in (1, 2, 4))
        frames, (height, width) = pad_to_multiple(x.flatten(0, 1), LATENT_STRIDE)
        skip = conv_norm_act(bb.stem, frames, per_frame(m2, t_in))
        latent = conv_norm_act(bb.encoder[0], skip, per_frame(m1, t_in))
        latent = conv_norm_act(bb.encoder[1], latent, per_frame(m0, t_in))
        h, w = latent.shape[-2:]
        t = masked(bb.translator[0](latent.reshape(batch, -1, h, w)), m0)
        weight = masked(scores[:, None], m0)
        channels: list[torch.Tensor] = []
        for block in self.blocks:
            z = group_norm(block.spatial(t), block.norm, m0)
            hidden = block.mlp[1](block.mlp[0](z))
            kept = self.decide_channels(z, weight, block, soft=soft)
            if kept is not None:
                hidden = hidden * kept[:, :, None, None]
                channels.append(kept)
            t = t + masked(block.mlp[2](hidden), m0)
        latent = masked(bb.translator[-1](t), m0).reshape(batch * t_out, -1, h, w)
        decoded = conv_norm_act(bb.decoder[0][1], bb.decoder[0][0](latent), per_frame(m1, t_out))
        decoded = conv_norm_act(bb.decoder[1][1], bb.decoder[1][0](decoded), per_frame(m2, t_out))
        last_skip = skip.reshape(batch, t_in, *skip.shape[1:])[:, -1:]
        last_skip = last_skip.expand(-1, t_out, -1, -1, -1).flatten(0, 1)
        delta = masked(bb.head(torch.cat([decoded, last_skip], dim=1)), per_frame(m2, t_out))[..., :height, :width]
        out = x[:, -1:] + delta.reshape(batch, t_out, bb.channels, height, width)
        return out, Decisions(grid, tiles, channels if self.config.model_mask else None)

    def dense_macs(self, x: torch.Tensor) -> tuple[DenseMacs, int]:
        """(the backbone's dense MACs per layer, the generator's MACs) per sample of inputs shaped like ``x``."""
        key = tuple(x.shape[1:])
        if key not in self._dense:
            sample = x[:1].detach()
            self._dense[key] = (dense_layer_macs(self.backbone, sample), dense_layer_macs(self.generator, sample).total)
        return self._dense[key]

    def dense_total_macs(self, x: torch.Tensor) -> int:
        return self.dense_macs(x)[0].total

    def channel_decision_macs(self) -> int:
        """MACs of the channel-importance responses (one per hidden channel of each block, per sample)."""
        if not self.config.model_mask:
            return 0
        return sum(b.mlp[0].in_channels * b.mlp[0].out_channels for b in self.blocks)

    def gated_layers(self) -> dict[str, GatedLayer]:
        """The translator MLP convs the model mask gates: the expansion on its outputs, the projection on its inputs."""
        out = {}
        for index in range(len(self.blocks)):  # translator.0 is the input 1x1 conv; blocks follow it
            out[f"translator.{index + 1}.mlp.0"] = GatedLayer(index, "out")
            out[f"translator.{index + 1}.mlp.2"] = GatedLayer(index, "in")
        return out

    def _account(self, x: torch.Tensor, decisions: Decisions) -> None:
        dense, generator_macs = self.dense_macs(x)
        positions, channels = decisions.position_fraction(), decisions.channel_fractions()
        if decisions.whole_map is not None and bool(decisions.whole_map.any()):  # the fallback computes everything
            whole = decisions.whole_map
            positions = torch.where(whole, torch.ones_like(positions), positions)
            if channels is not None:
                channels = torch.where(whole[:, None], torch.ones_like(channels), channels)
        macs = sample_macs(
            dense,
            self.gated_layers(),
            position_fraction=positions,
            channel_fractions=channels,
            generator_macs=generator_macs,
            decision_macs=self.channel_decision_macs(),
        )
        self.last_decisions, self.last_macs = decisions, macs
        self.last_mac_fraction = macs / dense.total


__all__ = ["EXECUTION_MODES", "CoprunedSimVP"]
