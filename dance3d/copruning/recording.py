"""Collect the per-sample MAC fractions a co-pruned model records while another tool runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn

from dance3d.copruning.base import CoprunedForecaster


@contextmanager
def record_mac_fractions(model: nn.Module) -> Iterator[list[float]]:
    """Inside, every forward of a :class:`CoprunedForecaster` appends its samples' MAC fractions to the
    yielded list; for any other model the list stays empty."""
    fractions: list[float] = []
    if not isinstance(model, CoprunedForecaster):
        yield fractions
        return

    def hook(module: CoprunedForecaster, inputs: tuple, output: object) -> None:
        fractions.extend(module.last_mac_fraction.detach().cpu().tolist())

    handle = model.register_forward_hook(hook)
    try:
        yield fractions
    finally:
        handle.remove()
