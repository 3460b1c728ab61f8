"""Model inputs: a tensor, a tuple/list of positional arguments, or a dict of keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map


def call_with(fn: Callable[..., Any], inputs: Any) -> Any:
    """``fn(*inputs)`` for tuples/lists, ``fn(**inputs)`` for dicts, else ``fn(inputs)``."""
    if isinstance(inputs, (tuple, list)):
        return fn(*inputs)
    if isinstance(inputs, dict):
        return fn(**inputs)
    return fn(inputs)


def first_tensor(inputs: Any) -> torch.Tensor:
    for leaf in tree_leaves(inputs):
        if isinstance(leaf, torch.Tensor):
            return leaf
    raise ValueError("inputs contain no tensor: pass a clip tensor, a tuple of args or a dict of kwargs")


def batch_size_of(inputs: Any) -> int:
    """Size of dim 0 of the first input tensor (1 for a scalar tensor)."""
    tensor = first_tensor(inputs)
    return int(tensor.shape[0]) if tensor.dim() > 0 else 1


def device_of(inputs: Any) -> torch.device:
    return first_tensor(inputs).device


def to_device(inputs: Any, device: torch.device) -> Any:
    return tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, inputs)
