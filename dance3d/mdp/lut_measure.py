"""Measuring the latency table on this machine: each prunable layer over its width grid, and the dense model.

A layer is timed with the BN and activation that follow it (see ``PrunableLayer.followers``), at
batch 1 on the dense input's full 3D shape with its own kernel, stride, padding and groups, in
the runtime's device, thread count and precision. Identical layer configurations (common in
ResNets) are timed once per round. Every latency is the lowest of ``runtime.rounds`` round
medians (see :class:`~dance3d.mdp.lut.LatencyRuntime`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from dance3d.errors import ConfigError
from dance3d.mdp.graph import PrunableLayer, Structure, extract_structure
from dance3d.mdp.lut import LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.plan import width_grid
from dance3d.progress import progress_bar

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@dataclass(frozen=True)
class TableGrid:
    """Width grid of every group: multiples of ``step`` (at most ``max_points`` of them) and the full width."""

    step: int = 16
    max_points: int = 8


def runtime_dtype(runtime: LatencyRuntime) -> torch.dtype:
    device = torch.device(runtime.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("the latency runtime asks for CUDA but no CUDA GPU is available")
    if runtime.precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 is not a CPU deployment precision; use fp32 or bf16")
    return _DTYPES[runtime.precision]


@contextlib.contextmanager
def runtime_threads(runtime: LatencyRuntime) -> Iterator[None]:
    """Run with the runtime's CPU thread count, restoring the previous one afterwards."""
    previous = torch.get_num_threads()
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _round_median_ms(fn: nn.Module, x: torch.Tensor, runtime: LatencyRuntime) -> float:
    from profiling import measure_latency

    return measure_latency(fn, x, warmup=runtime.warmup, repeats=runtime.repeats).median_ms


def measure_models_ms(
    models: list[nn.Module], clip_shape: tuple[int, ...], runtime: LatencyRuntime, *, progress: bool = False,
    desc: str = "measure",
) -> list[float]:  # fmt: skip
    """Batch-1 latency of each model: rounds interleaved across the models, the lowest round median kept.

    Copies are moved to the runtime's device and precision. Interleaving spreads a slow spell of
    the machine over all models instead of one.
    """
    dtype = runtime_dtype(runtime)
    copies = [copy.deepcopy(m).eval().to(device=runtime.device, dtype=dtype) for m in models]
    clip = torch.randn(1, *clip_shape, device=runtime.device, dtype=dtype)
    best = [float("inf")] * len(copies)
    with (
        runtime_threads(runtime),
        progress_bar(total=runtime.rounds * len(copies), desc=desc, unit="model", disable=not progress) as bar,
    ):
        for _ in range(runtime.rounds):
            for i, model in enumerate(copies):
                best[i] = min(best[i], _round_median_ms(model, clip, runtime))
                bar.update(1)
    return best


def measure_calls_ms(
    calls: Mapping[str, Callable[[], Any]], runtime: LatencyRuntime, *, progress: bool = False, desc: str = "measure"
) -> dict[str, float]:
    """Latency of zero-argument calls already on the runtime's device, timed as :func:`measure_models_ms` times
    models: rounds interleaved across the calls, the lowest round median kept."""
    runtime_dtype(runtime)  # refuses a device or precision this machine cannot run
    marker = torch.empty(0, device=runtime.device)  # what the timer synchronises
    best = dict.fromkeys(calls, float("inf"))
    with (
        runtime_threads(runtime),
        progress_bar(total=runtime.rounds * len(calls), desc=desc, unit="call", disable=not progress) as bar,
    ):
        for _ in range(runtime.rounds):
            for name, call in calls.items():
                best[name] = min(best[name], _round_median_ms(lambda _x, call=call: call(), marker, runtime))
                bar.update(1)
    return best


def measure_model_ms(model: nn.Module, clip_shape: tuple[int, ...], runtime: LatencyRuntime) -> float:
    """Batch-1 latency of ``model``: the lowest of ``runtime.rounds`` round medians."""
    return measure_models_ms([model], clip_shape, runtime)[0]


def layer_unit(gm: nn.Module, layer: PrunableLayer, cin: int, cout: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The layer at widths (cin, cout) with its followers, and its input shape (batch 1)."""
    module = gm.get_submodule(layer.name)
    if layer.op == "conv":
        conv = _CONVS[len(module.kernel_size)](
            cin, cout, module.kernel_size, stride=module.stride, padding=module.padding, dilation=module.dilation,
            groups=cin if layer.depthwise else 1, bias=module.bias is not None, padding_mode=module.padding_mode,
        )  # fmt: skip
        parts: list[nn.Module] = [conv]
        shape = (layer.input_shape[0], cin, *layer.input_shape[2:])
    else:
        parts = [nn.Linear(cin, cout, bias=module.bias is not None)]
        shape = (*layer.input_shape[:-1], cin)
    for name in layer.followers:
        if name == "relu":
            parts.append(nn.ReLU())
            continue
        follower = gm.get_submodule(name)
        if isinstance(follower, _BatchNorm):
            parts.append(
                type(follower)(cout) if type(follower).__module__.startswith("torch.") else nn.BatchNorm3d(cout)
            )
        else:
            parts.append(copy.deepcopy(follower))
    return nn.Sequential(*parts).eval(), shape


def _unit_key(gm: nn.Module, layer: PrunableLayer, cin: int, cout: int) -> tuple[Any, ...]:
    module = gm.get_submodule(layer.name)
    conv_args = tuple(str(getattr(module, k, None)) for k in ("kernel_size", "stride", "padding", "dilation"))
    followers = tuple(f if f == "relu" else type(gm.get_submodule(f)).__name__ for f in layer.followers)
    return (layer.op, layer.input_shape[2:], layer.input_shape[:1], cin, cout, layer.depthwise, conv_args, followers,
            module.bias is not None)  # fmt: skip


def _layer_points(structure: Structure, layer: PrunableLayer, grids: dict[str, tuple[int, ...]]):
    """(index into the table, cin, cout) for every grid point of the layer."""
    axes = layer.axes
    for index in itertools.product(*(range(len(grids[a])) for a in axes)):
        widths = {a: grids[a][i] for a, i in zip(axes, index, strict=True)}
        cin = widths.get(layer.in_group, layer.in_channels) if layer.in_group else layer.in_channels
        cout = widths.get(layer.out_group, layer.out_channels) if layer.out_group else layer.out_channels
        yield index, cin, cout


def build_table(
    model: nn.Module,
    model_spec: dict[str, Any],
    clip_shape: tuple[int, int, int, int],
    *,
    runtime: LatencyRuntime,
    grid: TableGrid,
    progress: bool = True,
) -> LatencyTable:
    """Time every prunable layer over its grid and the dense model end to end; ``env`` is left to the caller.

    The whole grid is timed ``runtime.rounds`` times over (units rebuilt each round, so memory
    stays that of one unit), the dense model once at the end of each round; each entry and the
    dense latency keep their lowest round median, so both come from the same stretch of time.
    """
    dtype = runtime_dtype(runtime)
    structure = extract_structure(model, clip_shape)
    grids = {
        g: width_grid(info.width, step=grid.step, max_points=grid.max_points) for g, info in structure.groups.items()
    }
    gm = structure.graph_module
    jobs = [
        (layer, [(index, _unit_key(gm, layer, cin, cout), cin, cout) for index, cin, cout in
                 _layer_points(structure, layer, grids)])
        for layer in structure.layers.values()
    ]  # fmt: skip
    units = {key: (layer, cin, cout) for layer, points in jobs for _, key, cin, cout in points}
    best = dict.fromkeys(units, float("inf"))
    dense = copy.deepcopy(model).eval().to(device=runtime.device, dtype=dtype)
    clip = torch.randn(1, *clip_shape, device=runtime.device, dtype=dtype)
    dense_ms = float("inf")
    total = runtime.rounds * (len(units) + 1)
    with (
        runtime_threads(runtime),
        progress_bar(total=total, desc="latency table", unit="unit", disable=not progress) as bar,
    ):
        for _ in range(runtime.rounds):
            for key, (layer, cin, cout) in units.items():
                unit, shape = layer_unit(gm, layer, cin, cout)
                unit = unit.to(device=runtime.device, dtype=dtype)
                x = torch.randn(*shape, device=runtime.device, dtype=dtype)
                best[key] = min(best[key], _round_median_ms(unit, x, runtime))
                bar.update(1)
            dense_ms = min(dense_ms, _round_median_ms(dense, clip, runtime))
            bar.update(1)
    layers: dict[str, LayerTable] = {}
    for layer, points in jobs:
        values = np.zeros(tuple(len(grids[a]) for a in layer.axes))
        for index, key, _, _ in points:
            values[index] = best[key]
        layers[layer.name] = LayerTable(layer.axes, tuple(grids[a] for a in layer.axes), values, layer.block)
    return LatencyTable(model_spec, clip_shape, runtime, layers, dense_ms, grids)
