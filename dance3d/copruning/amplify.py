"""The optional first stage of co-pruning: fine-tune the dense forecaster to amplify the variability of
what the masks act on (DANCE's AVA, for forecasters).

The masks act on each gated block's hidden activation: the data mask on its tiles, the model mask on
its hidden channels (SimVP's translator MLPs, the Transformer's MLPs, the ConvLSTM's cell states).
:class:`HiddenActivations` records them during a dense forward as (B, C, T, h, w); the stage raises
the coefficient of variation of their per-tile and per-channel mean magnitudes, across the samples of
a batch and within a sample (the AVA terms of :mod:`dance3d.dance.variability`; frames are left out,
co-pruning does not gate them). Loss = MSE / dense validation MSE - ``amplify_weight`` x mean over
kinds of the CV capped at ``amplify_cv_cap``: the MSE is relative to where the dense model starts, so
the weight means the same on every source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from dance3d.copruning.config import CopruneTrainConfig
from dance3d.copruning.generator import LATENT_STRIDE
from dance3d.dance.variability import variability_terms
from dance3d.dynamic.decisions import TileGrid
from dance3d.models.forecast_backbones import ConvLSTMForecaster, SimVP, SpatioTemporalTransformer
from dance3d.models.forecast_backbones.simvp import TranslatorBlock
from dance3d.progress import progress_bar

AMPLIFIED_UNITS = ("channel", "tile")
"""The unit kinds co-pruning gates: hidden channels (model mask) and tiles (data mask)."""

ToRows = Callable[[Any], torch.Tensor]  # a hooked module's output -> (B, C, T, positions)


def _simvp_hidden(backbone: SimVP) -> list[tuple[nn.Module, ToRows]]:
    """Each translator block's MLP activation (B, C, h, w)."""
    blocks = [m for m in backbone.translator if isinstance(m, TranslatorBlock)]
    return [(block.mlp[1], lambda out: out.flatten(2)[:, :, None]) for block in blocks]


def _stformer_hidden(backbone: SpatioTemporalTransformer) -> list[tuple[nn.Module, ToRows]]:
    """Each block's MLP activation (B, T, tokens, C)."""
    return [(block.mlp[1], lambda out: out.permute(0, 3, 1, 2)) for block in backbone.blocks]


def _convlstm_hidden(backbone: ConvLSTMForecaster) -> list[tuple[nn.Module, ToRows]]:
    """Each cell's new hidden state (B, C, h, w), once per step."""
    return [(cell, lambda out: out[0].flatten(2)[:, :, None]) for cell in backbone.cells]


HIDDEN: dict[type[nn.Module], Callable[[Any], list[tuple[nn.Module, ToRows]]]] = {
    SimVP: _simvp_hidden,
    SpatioTemporalTransformer: _stformer_hidden,
    ConvLSTMForecaster: _convlstm_hidden,
}


class HiddenActivations:
    """Forward hooks on a dense forecaster that record each gated block's hidden activation."""

    def __init__(self, backbone: nn.Module) -> None:
        hidden = next((find for kind, find in HIDDEN.items() if isinstance(backbone, kind)), None)
        if hidden is None:
            raise TypeError(f"no gated hidden activations known for {type(backbone).__name__}")
        self._rows: dict[int, list[torch.Tensor]] = {}
        self._handles = [
            module.register_forward_hook(functools.partial(self._record, index, to_rows))
            for index, (module, to_rows) in enumerate(hidden(backbone))
        ]

    def _record(self, index: int, to_rows: ToRows, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self._rows.setdefault(index, []).append(to_rows(output))

    def take(self, height: int, width: int) -> dict[int, torch.Tensor]:
        """The activations recorded since the last call, each (B, C, T, height, width); clears them."""
        out = {i: torch.cat(rows, dim=2).unflatten(3, (height, width)) for i, rows in self._rows.items()}
        self._rows = {}
        return out

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._rows = {}


def variability(activations: dict[int, torch.Tensor], grid: TileGrid) -> dict[str, torch.Tensor]:
    """Mean CV per kind (``within.tile``, ``across.channel``, ...) of the gated units over the blocks."""
    terms = variability_terms(activations, [grid] * (max(activations, default=-1) + 1))
    return {key: value for key, value in terms.items() if key.split(".")[1] in AMPLIFIED_UNITS}


@dataclass
class AmplifyResult:
    """The stage's epoch rows, and the CV terms on the validation split before and after it."""

    history: list[dict[str, float]]
    cv_before: dict[str, float]
    cv_after: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {"history": self.history, "cv_before": self.cv_before, "cv_after": self.cv_after}


def amplify(
    backbone: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    *,
    train: CopruneTrainConfig,
    grid_for: Callable[[int, int], TileGrid],
    dense_val_mse: float,
    device: torch.device,
) -> AmplifyResult:
    """Fine-tune ``backbone`` in place for ``train.amplify_epochs`` epochs with the amplifying loss."""
    recorder = HiddenActivations(backbone)
    trainable = [(p, p.requires_grad) for p in backbone.parameters()]
    try:
        before = _mean_variability(backbone, val_set, recorder, grid_for, train.batch_size, device)
        for parameter, _ in trainable:  # the stage trains the backbone even where co-pruning then freezes it
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(backbone.parameters(), lr=train.lr, weight_decay=0.0)
        history = []
        for epoch in range(train.amplify_epochs):
            history.append(_epoch(backbone, train_set, optimizer, recorder, grid_for, train, dense_val_mse,
                                  device=device, epoch=epoch))  # fmt: skip
        after = _mean_variability(backbone, val_set, recorder, grid_for, train.batch_size, device)
    finally:
        recorder.remove()
        for parameter, flag in trainable:
            parameter.requires_grad_(flag)
    backbone.eval()
    return AmplifyResult(history, before, after)


def _on_latent_map(
    inputs: torch.Tensor, recorder: HiddenActivations, grid_for: Callable[[int, int], TileGrid]
) -> tuple[dict[int, torch.Tensor], TileGrid]:
    """The recorded activations on the latent map of ``inputs`` (a quarter of its padded size) and its tile grid."""
    height, width = (-(-size // LATENT_STRIDE) for size in inputs.shape[-2:])
    return recorder.take(height, width), grid_for(height, width)


def _epoch(
    backbone: nn.Module,
    train_set: Dataset,
    optimizer: torch.optim.Optimizer,
    recorder: HiddenActivations,
    grid_for: Callable[[int, int], TileGrid],
    train: CopruneTrainConfig,
    dense_val_mse: float,
    *,
    device: torch.device,
    epoch: int,
) -> dict[str, float]:
    backbone.train()
    loader = DataLoader(train_set, batch_size=train.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(train.seed + 1000 + epoch))  # fmt: skip
    sums = {"loss": 0.0, "mse": 0.0, "cv": 0.0}
    steps = 0
    desc = f"amplify {epoch + 1}/{train.amplify_epochs}"
    for batch in progress_bar(loader, desc=desc, unit="batch", disable=not train.progress):
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        mse = F.mse_loss(backbone(inputs), targets)
        activations, grid = _on_latent_map(inputs, recorder, grid_for)
        terms = variability(activations, grid)
        cv = torch.stack([t.clamp(max=train.amplify_cv_cap) for t in terms.values()]).mean()
        loss = mse / dense_val_mse - train.amplify_weight * cv
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["loss"] += float(loss.detach())
        sums["mse"] += float(mse.detach())
        sums["cv"] += float(cv.detach())
        steps += 1
    return {"epoch": epoch + 1, **{f"train_{key}": value / steps for key, value in sums.items()}}


@torch.no_grad()
def _mean_variability(
    backbone: nn.Module,
    dataset: Dataset,
    recorder: HiddenActivations,
    grid_for: Callable[[int, int], TileGrid],
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Each CV kind averaged over the batches of ``dataset`` (all units kept)."""
    backbone.eval()
    values: dict[str, list[float]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs = batch["inputs"].to(device)
        backbone(inputs)
        activations, grid = _on_latent_map(inputs, recorder, grid_for)
        for key, value in variability(activations, grid).items():
            values.setdefault(key, []).append(float(value))
    return {key: sum(v) / len(v) for key, v in sorted(values.items())}
