"""Memory traffic: bytes per executed op, and an analytic per-layer model from module shapes.

Executed-ops (``bytes_source="executed-ops"``): every op that runs reads each distinct input tensor
(activations, weights, biases, buffers) once and writes its outputs once; views and allocations
move nothing. There is no cache model, so this is the DRAM traffic of an implementation that
fuses nothing.
Analytic (``bytes_source="analytic"``): per leaf module, input activations + the module's own
parameters and buffers read, outputs written; MACs for Conv*/ConvTranspose*/Linear from their
hyper-parameters and the observed shapes. It sees modules only, not functional calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

EXECUTED_OPS = "executed-ops"
ANALYTIC = "analytic"

# Ops that return a tensor without moving data, besides views and in-place view ops (``t_``,
# ``as_strided_``), which ``OpOverload.is_view`` and the ``inplace_view`` tag mark.
_NO_TRAFFIC = {
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::new_empty",
    "aten::new_empty_strided",
    "aten::_unsafe_view",
    "aten::lift_fresh",
}


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _tensors(tree: Any) -> list[torch.Tensor]:
    """Distinct tensors (by identity) among the leaves of ``tree``."""
    seen: dict[int, torch.Tensor] = {}
    for leaf in tree_leaves(tree):
        if isinstance(leaf, torch.Tensor):
            seen.setdefault(id(leaf), leaf)
    return list(seen.values())


def op_bytes(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """(bytes read, bytes written) of one executed op."""
    if func.is_view or torch.Tag.inplace_view in func.tags or func._schema.name in _NO_TRAFFIC:
        return 0, 0
    read = sum(tensor_bytes(t) for t in _tensors((args, kwargs)))
    written = sum(tensor_bytes(t) for t in _tensors(out))
    return read, written


@dataclass(frozen=True)
class AnalyticCost:
    """Analytic cost of one call of a leaf module."""

    macs: int
    bytes_read: int
    bytes_written: int


def analytic_macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    """MACs of a Conv/ConvTranspose/Linear call from its hyper-parameters; 0 for other modules."""
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            return inputs[0].numel() * (module.out_channels // module.groups) * kernel
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def analytic_layer_cost(module: nn.Module, inputs: tuple, output: Any) -> AnalyticCost:
    """Input activations + own parameters and float buffers read, outputs written, MACs from shapes.

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are bookkeeping, not read by kernels.
    """
    buffers = [b for b in module.buffers(recurse=False) if b.is_floating_point()]
    state = [*module.parameters(recurse=False), *buffers]
    return AnalyticCost(
        macs=analytic_macs(module, inputs, output),
        bytes_read=sum(tensor_bytes(t) for t in _tensors(inputs)) + sum(tensor_bytes(t) for t in state),
        bytes_written=sum(tensor_bytes(t) for t in _tensors(output)),
    )
