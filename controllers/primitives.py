"""Decision primitives: hard top-k masks with a straight-through gradient and budget levels.

A decision over ``n`` units (frames, channels or tiles) is made from per-unit logits ``z``:
the *wanted* count is the number of units with ``z > 0``; it is rounded **up** to the nearest
allowed level (so compact execution sees a few discrete shapes), and the kept units are the
top-``k`` logits. The backward pass uses ``sigmoid(z)`` as the surrogate of the 0/1 mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def level_counts(num_units: int, fractions: tuple[float, ...], *, multiple: int = 1) -> tuple[int, ...]:
    """Allowed kept counts: ``ceil(f * n)`` rounded up to ``multiple``, capped at ``n``, sorted, unique."""
    if num_units < 1:
        raise ValueError("num_units must be >= 1")
    if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError("keep fractions must lie in (0, 1]")
    counts = set()
    for fraction in fractions:
        count = math.ceil(fraction * num_units - 1e-9)
        count = min(num_units, max(multiple, math.ceil(count / multiple) * multiple))
        counts.add(count)
    counts.add(num_units)
    return tuple(sorted(counts))


def keep_counts(logits: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """Per row of ``logits`` (B, n): the smallest level >= the number of positive logits."""
    wanted = (logits > 0).sum(dim=1)
    table = torch.tensor(levels, device=logits.device)
    index = torch.searchsorted(table, wanted.contiguous())
    return table[index.clamp(max=len(levels) - 1)]


def topk_mask(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """0/1 float mask (B, n) keeping the ``counts[b]`` largest logits of each row (ties: lower index)."""
    order = logits.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(logits.shape[1], device=logits.device).expand_as(order))
    return (ranks < counts[:, None]).to(logits.dtype)


def keep_mask_host(logits: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """NumPy twin of ``topk_mask(logits, keep_counts(logits, levels))`` as a bool array (B, n).

    Inference-time decisions on the host: a few microseconds per call where the tensor version
    dispatches a dozen small ops.
    """
    if len(levels) == 1:  # no choice: the one level is every unit
        return np.ones(logits.shape, dtype=bool)
    wanted = np.count_nonzero(logits > 0, axis=1)
    counts = [next((level for level in levels if level >= w), levels[-1]) for w in wanted.tolist()]
    order = np.argsort(-logits, axis=1, kind="stable")  # descending, ties: lower index first
    mask = np.zeros(logits.shape, dtype=bool)
    for row, count in enumerate(counts):
        mask[row, order[row, :count]] = True
    return mask


def ste_mask(hard: torch.Tensor, logits: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """``hard`` in the forward pass, gradient of ``sigmoid(logits / temperature)`` in the backward pass."""
    soft = torch.sigmoid(logits / temperature)
    return hard + (soft - soft.detach())
