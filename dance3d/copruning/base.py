"""What every co-pruned forecaster shares: the generator's map ``S``, the tile grid, the data mask,
the execution mode and the per-sample records a forward leaves behind.

A subclass (:class:`~dance3d.copruning.model.CoprunedSimVP`,
:class:`~dance3d.copruning.transformer.CoprunedSTFormer`) supplies ``_simulate``, ``_compact`` and
``_account``: how its backbone runs under the masks and what that costs per sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.generator import LATENT_STRIDE, MaskGenerator
from dance3d.copruning.masks import data_mask
from dance3d.copruning.tiles import tile_scores
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones.common import check_inputs

EXECUTION_MODES = ("simulate", "compact")


class CoprunedForecaster(nn.Module):
    """(B, t_in, C, H, W) -> (B, t_out, C, H, W) with per-sample masks from one importance map ``S``.

    After each forward: ``last_scores`` (B, h, w) the importance map ``S``, ``last_decisions`` (the
    masks), ``last_macs`` (B,) MACs per sample of what the masks leave to compute (differentiable in
    training), ``last_mac_fraction`` (B,) the same over the dense backbone's MACs.
    """

    def __init__(self, backbone: nn.Module, config: CopruneConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.generator: nn.Module = MaskGenerator(backbone.channels, width=config.generator_width)
        self.mode = "simulate"
        self.last_scores: torch.Tensor | None = None
        self.last_decisions: Decisions | None = None
        self.last_macs: torch.Tensor | None = None
        self.last_mac_fraction: torch.Tensor | None = None

    def set_mode(self, mode: str) -> CoprunedForecaster:
        if mode not in EXECUTION_MODES:
            raise ConfigError(f"execution mode must be one of {', '.join(EXECUTION_MODES)}, got {mode!r}")
        self.mode = mode
        return self

    def grid_for(self, height: int, width: int) -> TileGrid:
        """The tile grid on a latent map of ``height x width``: tiles of the configured size, the last ones cut."""
        cells = self.config.tile_size // LATENT_STRIDE
        return TileGrid(height, width, math.ceil(height / cells), math.ceil(width / cells))

    def decide_tiles(self, scores: torch.Tensor, grid: TileGrid, *, soft: bool) -> torch.Tensor:
        return data_mask(tile_scores(scores, grid), self.config, soft=soft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inputs(x, t_in=self.backbone.t_in, channels=self.backbone.channels)
        scores = self.generator(x)
        self.last_scores = scores
        grid = self.grid_for(*scores.shape[-2:])
        if self.mode == "compact":
            out, decisions = self._compact(x, scores, grid)
        else:
            out, decisions = self._simulate(x, scores, grid)
        self._account(x, decisions)
        return out

    def _simulate(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        raise NotImplementedError

    def _compact(self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid) -> tuple[torch.Tensor, Decisions]:
        raise NotImplementedError

    def _account(self, x: torch.Tensor, decisions: Decisions) -> None:
        raise NotImplementedError

    def dense_total_macs(self, x: torch.Tensor) -> int:
        """The dense backbone's MACs per sample shaped like ``x``: the denominator of ``last_mac_fraction``."""
        raise NotImplementedError
