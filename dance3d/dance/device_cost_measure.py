"""Measuring a :class:`~dance3d.dance.device_cost.BlockCostTable` and checking what it predicts.

Each gated block is timed alone on its real input (captured from one batch-1 forward of a clip with
every unit kept) at each of its levels, run the way compact execution runs that bucket: the
block module as it is for the all-kept level, :func:`~dance3d.dynamic.compact.compact_block` with
random masks of the level's counts otherwise (with the model's compact calibration, if it has one).
The whole model (every unit kept, compact mode) and the controller with its host decisions are
timed too. Timing is MDP's (:func:`dance3d.mdp.lut_measure.measure_calls_ms`: rounds interleaved,
lowest round median); with an energy meter each entry's joules come from
:func:`profiling.energy.measure_energy` (the call looped over the meter's window).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dance3d.checkpoint import load_checkpoint, load_model
from dance3d.dance.common import load_backbone_checkpoint
from dance3d.dance.device_cost import BlockCosts, BlockCostTable, Level, gate_signature
from dance3d.dynamic import BlockDecision, DynamicConfig, DynamicModel, convert_model, set_execution_mode
from dance3d.dynamic.checkpoint import KIND as DYNAMIC
from dance3d.dynamic.compact import CompactRun, compact_block, host_decisions
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime, error_pct
from dance3d.mdp.lut_measure import measure_calls_ms, runtime_threads
from profiling.energy import measure_energy
from profiling.meters.base import EnergyMeter


def _random_mask(count: int, kept: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(1, count, dtype=torch.bool)
    mask[0, torch.randperm(count, generator=generator)[:kept]] = True
    return mask.to(device)


def _captured(model: DynamicModel, clip: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Each gated block's input and the stem output of one all-kept forward of ``clip`` (1, C, T, H, W)."""
    inputs: dict[int, torch.Tensor] = {}
    stem: list[torch.Tensor] = []
    handles = [
        g.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0]))
        for i, g in enumerate(model.gated)
    ]
    handles.append(
        model.backbone.get_submodule(model.stem_name).register_forward_hook(lambda m, i, out: stem.append(out))
    )
    try:
        with torch.inference_mode():
            model(clip, decisions=model.full_decisions(1, clip.device))
    finally:
        for handle in handles:
            handle.remove()
    return inputs, stem[0]


def block_calls(model: DynamicModel, clip: torch.Tensor, *, seed: int = 0) -> dict[str, Callable[[], Any]]:
    """Zero-argument calls to time: ``dense``, ``controller`` and ``<block>:<f>/<c>/<t>`` for every level."""
    inputs, stem = _captured(model, clip)
    generator = torch.Generator().manual_seed(seed)
    device = clip.device
    calls: dict[str, Callable[[], Any]] = {}
    full = model.full_decisions(1, device)
    calls["dense"] = lambda: model(clip, decisions=full)
    calls["controller"] = lambda: model.decide(stem)
    for index, (gated, levels, spec) in enumerate(zip(model.gated, model.levels, model.gate_specs, strict=True)):
        x = inputs[index]
        for level in itertools.product(levels.frames, levels.channels, levels.tiles):
            key = f"{index}:{level[0]}/{level[1]}/{level[2]}"
            if level == (spec.num_frames, spec.num_channels, spec.num_tiles):
                calls[key] = functools.partial(_whole_block, gated.block, x)
                continue
            decision = BlockDecision(
                _random_mask(spec.num_frames, level[0], generator, device),
                _random_mask(spec.num_channels, level[1], generator, device),
                _random_mask(spec.num_tiles, level[2], generator, device),
                gated.grid,
            )
            host: list = [None] * len(model.gated)
            host[index] = host_decisions([decision])[0]
            run = CompactRun(host, model.compact_calibration)
            with torch.inference_mode():
                if compact_block(gated, x, run) is None:
                    raise ConfigError(
                        f"gated block {index} ({model.block_names[index]}) has no compact execution path; "
                        "a device cost table times compact execution"
                    )
            calls[key] = functools.partial(compact_block, gated, x, run)
    return calls


def _whole_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with fast_conv_backend():  # what compact mode runs for a block that keeps everything
        return block(x)


def _energy_j(calls: dict[str, Callable[[], Any]], meter: EnergyMeter, device: torch.device) -> tuple[dict, str]:
    """Joules per call of each call (the meter's window per call); ``({}, why)`` when the meter fails."""
    out = {}
    for name, call in calls.items():
        result = measure_energy(lambda _x, call=call: call(), torch.empty(0, device=device), meter=meter,
                                device=device)  # fmt: skip
        if result.energy_status != "ok":
            return {}, result.energy_status
        out[name] = result.energy_j
    return out, "ok"


def build_cost_table(
    model: DynamicModel,
    model_spec: dict[str, Any],
    *,
    runtime: LatencyRuntime,
    meter: EnergyMeter | None = None,
    energy_status: str = "not requested",
    seed: int = 0,
    progress: bool = True,
    env: dict[str, Any] | None = None,
) -> BlockCostTable:
    """Measure ``model``'s gated blocks at every level on ``runtime``'s device (the model is set to compact mode,
    eval). ``meter``: also joules per entry; without one, ``energy_status`` says why there are none."""
    if runtime.precision != "fp32":
        raise ConfigError("the cost table times compact execution, which runs in fp32; use --precision fp32")
    device = torch.device(runtime.device)
    model.to(device).eval()
    set_execution_mode(model, "compact")
    clip = torch.randn(1, 3, *model.clip_shape, generator=torch.Generator().manual_seed(seed)).to(device)
    with runtime_threads(runtime):
        calls = block_calls(model, clip, seed=seed)
    latency = measure_calls_ms(calls, runtime, progress=progress, desc="cost table")
    energy: dict[str, float] = {}
    if meter is not None:
        with runtime_threads(runtime):
            energy, energy_status = _energy_j(calls, meter, device)
    blocks = []
    for index, levels in enumerate(model.levels):
        grids = (levels.frames, levels.channels, levels.tiles)
        shape = tuple(len(g) for g in grids)
        ms, joules = np.zeros(shape), np.zeros(shape) if energy else None
        for position in itertools.product(*(range(n) for n in shape)):
            key = f"{index}:" + "/".join(str(g[i]) for g, i in zip(grids, position, strict=True))
            ms[position] = latency[key]
            if joules is not None:
                joules[position] = energy[key]
        blocks.append(BlockCosts(grids, ms, joules))
    return BlockCostTable(
        model={"name": model_spec.get("name"), "num_classes": model_spec.get("num_classes")},
        gates=gate_signature(model),
        clip_shape=(3, *model.clip_shape),
        runtime=runtime,
        blocks=blocks,
        dense_ms=latency["dense"],
        controller_ms=latency["controller"],
        dense_j=energy.get("dense"),
        controller_j=energy.get("controller"),
        energy_status=energy_status,
        energy_meter=meter.name if meter is not None and energy else "none",
        env=env or {},
    )


# -- checking the prediction ------------------------------------------------------------------------------


AXES: tuple[str, ...] = ("frames", "channels", "tiles")


@dataclass(frozen=True)
class OperatingPoint:
    """The same keep fraction on the ``axes`` cut (default all three) of every gated block (rounded up to a level),
    the other axes kept whole; one clip's decisions."""

    keep_fraction: float
    axes: tuple[str, ...] = AXES

    def __post_init__(self) -> None:
        if not self.axes or not set(self.axes) <= set(AXES):
            raise ConfigError(f"operating point axes {self.axes} are not a non-empty subset of {AXES}")

    def levels(self, model: DynamicModel) -> list[Level]:
        out = []
        for levels in model.levels:
            grids = (levels.frames, levels.channels, levels.tiles)
            out.append(tuple(
                _level_at(grid, self.keep_fraction) if axis in self.axes else grid[-1]
                for axis, grid in zip(AXES, grids, strict=True)
            ))  # fmt: skip
        return out


def _level_at(grid: tuple[int, ...], keep_fraction: float) -> int:
    wanted = keep_fraction * grid[-1]
    return next((count for count in grid if count >= wanted - 1e-9), grid[-1])


def decisions_at(
    model: DynamicModel, levels: list[Level], *, device: torch.device | str = "cpu"
) -> list[BlockDecision]:
    """Decisions of one clip keeping ``count`` evenly spaced units of each axis at each block's level."""
    out = []
    for (frames, channels, tiles), spec, gated in zip(levels, model.gate_specs, model.gated, strict=True):
        masks = []
        for count, total in ((frames, spec.num_frames), (channels, spec.num_channels), (tiles, spec.num_tiles)):
            mask = torch.zeros(1, total, dtype=torch.bool, device=device)
            mask[0, (torch.arange(count) * total) // count] = True  # evenly spaced
            masks.append(mask)
        out.append(BlockDecision(*masks, gated.grid))
    return out


def time_levels(
    model: DynamicModel, points: dict[str, list[Level]], runtime: LatencyRuntime, *, seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """The whole model in compact mode at each named set of per-block levels (:func:`decisions_at`, no controller),
    timed beside each other on one random clip: median ms and the MAC fraction the model counts, by name."""
    device = torch.device(runtime.device)
    model.to(device).eval()
    set_execution_mode(model, "compact")
    clip = torch.randn(1, 3, *model.clip_shape, generator=torch.Generator().manual_seed(seed)).to(device)
    calls, mac_fractions = {}, {}
    for name, levels in points.items():
        calls[name] = functools.partial(model, clip, decisions=decisions_at(model, levels, device=device))
        with torch.inference_mode():
            calls[name]()
        mac_fractions[name] = float(model.last_mac_fraction[0])
    return measure_calls_ms(calls, runtime), mac_fractions


def check_prediction(
    model: DynamicModel, table: BlockCostTable, runtime: LatencyRuntime, *, keep_fractions: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Whole-model compact latency at each operating point (fixed decisions, no controller), measured beside
    each other, against the table's prediction: rows with ``predicted_ms``, ``measured_ms``, ``error_pct``."""
    points = {str(f): OperatingPoint(f).levels(model) for f in keep_fractions}
    measured, _ = time_levels(model, points, runtime)
    rows = []
    for fraction in keep_fractions:
        levels = points[str(fraction)]
        predicted = table.predict(levels, controller=False)
        rows.append({
            "keep_fraction": fraction,
            "levels": [list(level) for level in levels],
            "predicted_ms": predicted,
            "measured_ms": measured[str(fraction)],
            "error_pct": error_pct(predicted, measured[str(fraction)]),
        })  # fmt: skip
    return rows


def format_check(rows: list[dict[str, Any]]) -> str:
    """:func:`check_prediction`'s rows as printed lines."""
    return "\n".join(
        f"cost table at keep {row['keep_fraction']:g}: predicted {row['predicted_ms']:.3f} ms, measured "
        f"{row['measured_ms']:.3f} ms ({row['error_pct']:+.1f}%)"
        for row in rows
    )


# -- which model a table is of ------------------------------------------------------------------------------


def zoo_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "num_classes"}`` of a dense, MDP-pruned (its dense model) or dynamic (its backbone) spec."""
    inner = spec.get("backbone", spec)
    inner = inner.get("dense", inner)
    return {"name": inner.get("name"), "num_classes": inner.get("num_classes")}


def dynamic_model_of(path: str | Path, *, dynamic: DynamicConfig | None = None) -> tuple[DynamicModel, dict[str, Any]]:
    """The dynamic model a table is measured on, and its zoo spec: a ``dynamic`` checkpoint's own model, or a dense
    or MDP-pruned checkpoint converted with ``dynamic`` (default: the config ``dance3d aap`` uses by default).

    Only the gated blocks' shapes and levels matter to the table, not the weights or the controller's training,
    so a table measured before AAP serves the model AAP trains."""
    checkpoint = load_checkpoint(path)
    if checkpoint.kind == DYNAMIC:
        if dynamic is not None:
            raise ConfigError(f"{path} is a dynamic checkpoint: it has its own dynamic config")
        return load_model(path).model, zoo_spec(checkpoint.model)
    _, backbone = load_backbone_checkpoint(path)
    shape = (checkpoint.data["num_frames"], checkpoint.data["height"], checkpoint.data["width"])
    return convert_model(backbone, clip_shape=shape, config=dynamic or DynamicConfig()), zoo_spec(checkpoint.model)
