"""Measure a :class:`~dance3d.dynamic.compact_calibration.CompactCalibration` for a dynamic model.

Every gated block is timed alone on its real input (captured from one forward of ``clip``), at
each of its bucket levels that skip tiles, on tile regions and with all spatial positions computed,
interleaved, on the device the model is on. The result says, per block and level, which path to run.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import torch

from dance3d.dynamic.compact import CompactRun, compact_block, host_decisions
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.dynamic.compact_calibration import CompactCalibration, device_key, median_ms
from dance3d.dynamic.decisions import BlockDecision
from dance3d.errors import ConfigError


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


def _interleaved(
    calls: dict[str, Callable[[], object]], *, device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """Median ms per call, the calls timed round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode(), fast_conv_backend():
        for call in calls.values():
            median_ms(call, device=device, warmup=warmup, repeats=1)
        for _ in range(repeats):
            for name, call in calls.items():
                samples[name].append(median_ms(call, device=device, warmup=0, repeats=1))
    return {name: sorted(v)[len(v) // 2] for name, v in samples.items()}


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
            times = _interleaved(calls, device=device, warmup=warmup, repeats=repeats)
            if gated.compact_runtime.stages is None:
                break  # unsupported branch: runs the simulate path, nothing to choose
            calibration.record(index, level, compact_ms=times["compact"], dense_ms=times["dense"])
    return calibration
