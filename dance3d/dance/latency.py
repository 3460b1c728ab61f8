"""Batch-1 latency of DANCE, static and dense models, timed side by side (compact execution)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch

from dance3d.dance.data import ClipCache
from dance3d.dance.static_baseline import expand
from dance3d.dynamic import BlockDecision, DynamicModel, set_execution_mode
from dance3d.dynamic.compact_backend import fast_conv_backend
from profiling import measure_interleaved

Forward = Callable[[torch.Tensor], Any]


def _cycling(forward: Forward, inputs: list[torch.Tensor]) -> Callable[[], Any]:
    """A zero-argument call that runs ``forward`` on the next of ``inputs``, round and round."""
    clips = itertools.cycle(inputs)
    return lambda: forward(next(clips))


def batch1_latency_ms(forwards: dict[str, Forward], clips: ClipCache, *, count: int = 32,
                      repeats: int = 5, batch_size: int = 1) -> dict[str, float]:  # fmt: skip
    """Median latency (ms) of each forward over the first ``count`` batches of ``batch_size`` clips (batch 1 by
    default), timed round-robin (machine noise hits all alike) after one warm-up pass over them; every forward sees
    the batches in the same order."""
    count = min(count, len(clips) // batch_size)
    inputs = [clips.batch(torch.arange(i * batch_size, (i + 1) * batch_size))[0].float() for i in range(count)]
    calls = {name: _cycling(forward, inputs) for name, forward in forwards.items()}
    stats = measure_interleaved(calls, warmup=len(inputs), repeats=repeats * len(inputs))
    return {name: s.median_ms for name, s in stats.items()}


def dense_forward(dense: torch.nn.Module) -> Forward:
    """``dense`` through oneDNN, the convolution path compact execution uses (a fair dense reference on CPU)."""

    def forward(clip: torch.Tensor) -> torch.Tensor:
        with fast_conv_backend():
            return dense(clip)

    return forward


def compact_forward(model: DynamicModel, decisions: list[BlockDecision] | None = None) -> Forward:
    """Compact execution of ``model`` (sets it): its controller's decisions, or fixed ``decisions`` of one clip."""
    set_execution_mode(model, "compact")
    model.eval()
    fixed = None if decisions is None else expand(decisions, 1)
    return lambda clip: model(clip, decisions=fixed)


def dance_forwards(
    model: DynamicModel, clips: ClipCache, *, compile_controller: bool = True, log=print
) -> dict[str, Forward]:
    """Compact forwards of a DANCE model (``dance``) and, with ``compile_controller``, of a copy with its controller
    ``torch.compile``'d (``dance_compiled_controller``, where it compiles)."""
    forwards = {"dance": compact_forward(model)}
    if not compile_controller:
        return forwards
    compiled = copy.deepcopy(model)
    compiled.compile_controller()
    forward = compact_forward(compiled)
    try:
        with torch.inference_mode():
            forward(clips.batch(torch.tensor([0]))[0].float())  # compiles here
        forwards["dance_compiled_controller"] = forward
    except Exception as error:  # noqa: BLE001 - torch.compile fails in many ways (e.g. no C++ compiler)
        log(f"compiled controller not timed: {error}")
    return forwards
