"""Materialise a plan: a physically smaller model (real narrower convs/BNs/linears, removed branches gone).

The result is a ``torch.fx.GraphModule`` with the dense model's module names, so its state dict
keys are the dense keys minus the removed branches. Kept channels are given per group (the most
important ones); without them the first ``width`` channels are kept (enough to rebuild a saved
model before loading its weights).
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from dance3d.mdp.graph import PrunableLayer, Structure
from dance3d.mdp.plan import PrunePlan

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def materialize(
    structure: Structure, plan: PrunePlan, *, keep: dict[str, torch.Tensor] | None = None
) -> fx.GraphModule:
    """A new, smaller model for ``plan``; ``keep[g]``: the kept channel indices of group ``g``."""
    plan.check(structure)
    gm = copy.deepcopy(structure.graph_module)
    nodes = {n.name: n for n in gm.graph.nodes}
    for name in plan.removed_blocks:
        block = structure.blocks[name]
        add = nodes[block.add_node]
        add.replace_all_uses_with(nodes[block.shortcut_node])
        gm.graph.erase_node(add)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    if keep is None:
        keep = {g: torch.arange(w) for g, w in plan.widths.items()}
    present = dict(gm.named_modules())
    for name, layer in structure.layers.items():
        if name in present:
            _replace(gm, name, _slice_layer(present[name], layer, keep))
    for name, group in structure.bn_groups.items():
        if name in present:
            _replace(gm, name, _slice_bn(present[name], keep[group]))
    gm.recompile()
    return gm


def _replace(gm: fx.GraphModule, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, attr, module)


def _slice_layer(module: nn.Module, layer: PrunableLayer, keep: dict[str, torch.Tensor]) -> nn.Module:
    in_idx = keep[layer.in_group] if layer.in_group is not None else None
    out_idx = keep[layer.out_group] if layer.out_group is not None else None
    if in_idx is None and out_idx is None:
        return module
    weight = module.weight.detach()
    bias = module.bias.detach() if module.bias is not None else None
    if isinstance(module, _ConvNd) and layer.depthwise:
        weight, groups = weight[out_idx], len(out_idx)
        bias = bias[out_idx] if bias is not None else None
    else:
        groups = getattr(module, "groups", 1)
        if out_idx is not None:
            weight = weight[out_idx]
            bias = bias[out_idx] if bias is not None else None
        if in_idx is not None:
            weight = weight[:, in_idx]
    if isinstance(module, _ConvNd):
        new: nn.Module = _CONVS[len(module.kernel_size)](
            weight.shape[1] * groups,
            weight.shape[0],
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=groups,
            bias=bias is not None,
            padding_mode=module.padding_mode,
        )
    else:
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(module.training)
    return new


def _slice_bn(module: _BatchNorm, idx: torch.Tensor) -> nn.Module:
    cls = type(module) if type(module) in _BNS else nn.BatchNorm3d
    new = cls(
        len(idx), eps=module.eps, momentum=module.momentum, affine=module.affine,
        track_running_stats=module.track_running_stats,
    )  # fmt: skip
    ref = module.weight if module.affine else module.running_mean
    new = new.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        if module.affine:
            new.weight.copy_(module.weight[idx])
            new.bias.copy_(module.bias[idx])
        if module.track_running_stats:
            new.running_mean.copy_(module.running_mean[idx])
            new.running_var.copy_(module.running_var[idx])
            new.num_batches_tracked.copy_(module.num_batches_tracked)
    new.train(module.training)
    return new
