"""Measure a :class:`~dance3d.dynamic.compact_calibration.CompactCalibration` for a dynamic model.

Every gated block is timed alone on its real input (captured from one forward of ``clip``), at
each of its bucket levels that skip tiles, on tile regions and with all spatial positions computed,
interleaved, on the device the model is on. The result says, per block and level, which path to run.
"""

from __future__ import annotations

import functools
import itertools

import torch

from dance3d.dynamic.compact import CompactRun, compact_block, host_decisions
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.dynamic.compact_calibration import CompactCalibration, device_key
from dance3d.dynamic.decisions import BlockDecision
from dance3d.errors import ConfigError
from profiling.latency import measure_interleaved


class _Forced(CompactCalibration):
    """A calibration that answers one fixed choice for every level (used while timing)."""

    def __init__(self, choice: str) -> None:
        super().__init__(device="forced")
        self.forced = choice

    def choice(self, block: int, level: tuple[int, int, int]) -> str | None:
        return self.forced


def _random_mask(count: int, kept: int, generator: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(1, count, dtype=torch.bool)
    mask[0, torch.randperm(count, generator=generator)[:kept]] = True
    return mask


def calibrate(
    model, clip: torch.Tensor, *, warmup: int = 3, repeats: int = 10, max_levels: int | None = None, seed: int = 0
) -> CompactCalibration:
    """Time compact vs all-positions execution per gated block and bucket level (``clip``: (C, T, H, W))."""
    if model.training:
        raise ConfigError("calibrate a dynamic model in eval mode")
    device = next(model.parameters()).device
    inputs: dict[int, torch.Tensor] = {}
    handles = [
        g.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0]))
        for i, g in enumerate(model.gated)
    ]
    try:
        with torch.inference_mode():
            x = clip[None].to(device)
            model(x, decisions=model.full_decisions(1, device))
    finally:
        for handle in handles:
            handle.remove()
    calibration = CompactCalibration(device=device_key(device))
    generator = torch.Generator().manual_seed(seed)
    for index, (gated, levels, spec) in enumerate(zip(model.gated, model.levels, model.gate_specs, strict=True)):
        combos = list(itertools.product(levels.frames, levels.channels, levels.tiles))
        if max_levels is not None:
            combos = combos[-max_levels:]
        for level in combos:
            if level[2] == spec.num_tiles:
                continue  # all tiles kept: both paths run the same plan
            decision = BlockDecision(
                _random_mask(spec.num_frames, level[0], generator).to(device),
                _random_mask(spec.num_channels, level[1], generator).to(device),
                _random_mask(spec.num_tiles, level[2], generator).to(device),
                gated.grid,
            )
            host = [None] * len(model.gated)
            host[index] = host_decisions([decision])[0]
            calls = {
                c: functools.partial(compact_block, gated, inputs[index], CompactRun(host, _Forced(c)))
                for c in ("compact", "dense")
            }
            with fast_conv_backend():
                times = measure_interleaved(calls, warmup=warmup, repeats=repeats, device=device)
            if gated.compact_runtime.stages is None:
                break  # unsupported branch: runs the simulate path, nothing to choose
            calibration.record(index, level, compact_ms=times["compact"].median_ms, dense_ms=times["dense"].median_ms)
    return calibration
