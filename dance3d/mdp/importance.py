"""Importance of channel groups and of removable blocks (first-order Taylor), and filter magnitudes.

Channel ``c`` of a group: per batch, the first-order estimate of the loss change when the channel
is zeroed in every BN of the group, ``t_c = sum_BN (dL/dgamma_c * gamma_c + dL/dbeta_c * beta_c)``,
squared and summed over batches (Molchanov et al. 2019). Groups without a BN use the weights and
bias of the convs producing them instead. A block: per batch, the same estimate for removing its
branch output ``b``, ``(sum dL/db * b)^2``, summed over batches. Both are in units of squared loss
change, so the solver can trade channels against blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from dance3d.mdp.graph import Structure
from dance3d.progress import progress_bar


@dataclass
class Importance:
    """Per-channel scores of each group and a score per removable block."""

    channels: dict[str, torch.Tensor]
    blocks: dict[str, float]

    def ranking(self, group: str) -> torch.Tensor:
        """Channel indices of ``group``, most important first."""
        return torch.argsort(self.channels[group], descending=True, stable=True)

    def kept_value(self, group: str, width: int) -> float:
        """Sum of the ``width`` largest channel scores."""
        return float(self.channels[group][self.ranking(group)[:width]].sum())

    def keep_indices(self, widths: dict[str, int]) -> dict[str, torch.Tensor]:
        """The ``widths[g]`` most important channels of each group, in ascending index order."""
        return {g: torch.sort(self.ranking(g)[:w]).values for g, w in widths.items()}


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps the named nodes' outputs with their gradients."""

    def __init__(self, gm: fx.GraphModule, names: set[str]) -> None:
        super().__init__(gm)
        self.names = names
        self.values: dict[str, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.names and isinstance(out, torch.Tensor) and out.requires_grad:
            out.retain_grad()
            self.values[n.name] = out
        return out


def _channel_terms(structure: Structure, group: str) -> torch.Tensor:
    """``t_c`` of one batch from the gradients now stored on the parameters."""
    gm = structure.graph_module
    info = structure.groups[group]
    terms = torch.zeros(info.width)
    sources = [gm.get_submodule(n) for n in info.bns]
    sources = [m for m in sources if getattr(m, "weight", None) is not None] or [
        gm.get_submodule(n) for n in info.producers
    ]
    for module in sources:
        for param in (module.weight, getattr(module, "bias", None)):
            if param is not None and param.grad is not None:
                terms += (param.grad * param).detach().reshape(param.shape[0], -1).sum(1)
    return terms


def taylor_importance(
    structure: Structure, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, progress: bool = True
) -> Importance:
    """Accumulate Taylor scores over ``(clips, labels)`` batches (model in eval mode, weights untouched)."""
    gm = structure.graph_module
    was_training = gm.training
    gm.eval()
    channels = {g: torch.zeros(info.width) for g, info in structure.groups.items()}
    blocks = dict.fromkeys(structure.blocks, 0.0)
    branch = {b.branch_node: name for name, b in structure.blocks.items()}
    with torch.enable_grad():
        for clips, labels in progress_bar(batches, desc="importance", unit="batch", disable=not progress):
            gm.zero_grad(set_to_none=True)
            recorder = _Recorder(gm, set(branch))
            loss = F.cross_entropy(recorder.run(clips), labels)
            loss.backward()
            for g in channels:
                channels[g] += _channel_terms(structure, g) ** 2
            for node, value in recorder.values.items():
                blocks[branch[node]] += float((value.grad * value).sum().detach()) ** 2
    gm.zero_grad(set_to_none=True)
    gm.train(was_training)
    return Importance(channels, blocks)


def magnitude_importance(structure: Structure) -> Importance:
    """L1 norm of each output filter of the convs producing a group (the static baseline's rule)."""
    gm = structure.graph_module
    channels = {}
    for g, info in structure.groups.items():
        weights = [gm.get_submodule(p).weight.detach() for p in info.producers]
        channels[g] = sum(w.abs().reshape(w.shape[0], -1).sum(1) for w in weights)
    return Importance(channels, dict.fromkeys(structure.blocks, 0.0))
