"""Compact execution of one gated block: skipped frames, channels and tiles are not computed.

Decisions are fetched to the host once per forward (:func:`host_decisions`). Each block groups
the clips of a batch into buckets by their ``(kept frames, kept channels, kept tiles)`` level and
runs every bucket as one smaller dense problem: weights sliced per clip (clips stacked along the
channel dimension of a grouped conv), the input frames under the kept output frames gathered into
a shorter clip (compressed-clip semantics, no temporal halo) and kept tile regions cut with their
spatial halo (:mod:`dance3d.dynamic.compact_plan`), the residual added to the dense shortcut at the
kept positions only. A bucket whose tiled plan would not be faster (calibration, or the analytic
default) computes all spatial positions of its kept frames and masks the skipped tiles; blocks whose
branch is not a plain conv chain (:mod:`dance3d.dynamic.compact_branch`) run the simulate path.
Both fallbacks are exact.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.dynamic.compact_backend import conv3d, fast_conv_backend
from dance3d.dynamic.compact_branch import Stage, branch_stages, output_activation, shortcut_stages
from dance3d.dynamic.compact_calibration import CompactCalibration
from dance3d.dynamic.compact_plan import BucketPlan, Gather, build_plan
from dance3d.dynamic.compact_ranges import (
    CONVOLUTIONS,
    GATHER,
    HOST_DECISIONS,
    PLAN_BUILDING,
    SCATTER,
    WEIGHT_SLICING,
    compact_range,
)
from dance3d.dynamic.decisions import BlockDecision, TileGrid

CACHE_SIZE = 256
Weights = list[tuple[torch.Tensor, torch.Tensor, int]]  # per stage: (weight, bias, groups) for a bucket


@dataclass
class HostDecision:
    """One block's decisions for a batch as host arrays, plus each clip's bucket level."""

    frames: np.ndarray  # (B, T) bool
    channels: np.ndarray  # (B, C) bool
    tiles: np.ndarray  # (B, n_tiles) bool
    levels: list[tuple[int, int, int]]

    @classmethod
    def of(cls, frames: np.ndarray, channels: np.ndarray, tiles: np.ndarray) -> HostDecision:
        """From bool masks (B, n) per axis; levels are their kept counts."""
        counts = (frames.sum(axis=1).tolist(), channels.sum(axis=1).tolist(), tiles.sum(axis=1).tolist())
        return cls(frames, channels, tiles, levels=list(zip(*counts, strict=True)))

    def to_decision(self, grid: TileGrid, device: torch.device) -> BlockDecision:
        """The same masks as a :class:`BlockDecision` of tensors on ``device``."""
        masks = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (self.frames, self.channels, self.tiles))
        return BlockDecision(*masks, grid)

    def keeps_everything(self) -> bool:
        """Every clip keeps every frame, channel and tile."""
        return bool(self.frames.all() and self.channels.all() and self.tiles.all())

    def position_fraction(self, grid: TileGrid) -> np.ndarray:
        """Kept fraction of output positions per clip (B,) float32, as simulate computes it."""
        return (self.frames.mean(axis=1) * (self.tiles @ _tile_areas(grid))).astype(np.float32)

    def channel_fraction(self) -> np.ndarray:
        """Kept fraction of inner channels per clip (B,) float32."""
        return self.channels.mean(axis=1, dtype=np.float32)

    def buckets(self) -> dict[tuple[int, int, int], list[int]]:
        out: dict[tuple[int, int, int], list[int]] = {}
        for clip, level in enumerate(self.levels):
            out.setdefault(level, []).append(clip)
        return out


@functools.lru_cache(maxsize=64)
def _tile_areas(grid: TileGrid) -> np.ndarray:
    """Each tile's share of the map (the last row / column of tiles may be cut)."""
    rows = np.minimum(grid.tile_h, grid.height - grid.tile_h * np.arange(grid.rows)).clip(min=0)
    cols = np.minimum(grid.tile_w, grid.width - grid.tile_w * np.arange(grid.cols)).clip(min=0)
    return (rows[:, None] * cols[None, :]).ravel() / (grid.height * grid.width)


def host_decisions(decisions: list[BlockDecision]) -> list[HostDecision]:
    """All blocks' masks in one device-to-host copy (the single sync of a compact forward)."""
    with compact_range(HOST_DECISIONS):
        parts = [t for d in decisions for t in (d.frames, d.channels, d.tiles)]
        flat = torch.cat([t.reshape(t.shape[0], -1) for t in parts], dim=1).cpu().numpy().astype(bool)
        out, start = [], 0
        for d in decisions:
            arrays = []
            for t in (d.frames, d.channels, d.tiles):
                arrays.append(flat[:, start : start + t.shape[1]])
                start += t.shape[1]
            out.append(HostDecision.of(*arrays))
        return out


@dataclass
class CompactRun:
    """What the gated blocks need during one compact forward."""

    host: list[HostDecision]
    calibration: CompactCalibration | None


@dataclass
class BlockRuntime:
    """Per-block state: folded stages (rebuilt when weights change) and plan / weight caches."""

    stages: list[Stage] | None = None
    shortcut: list[Stage] | None = None
    tensors: list[torch.Tensor] = field(default_factory=list)
    versions: tuple[int, ...] = ()
    plans: OrderedDict = field(default_factory=OrderedDict)
    weights: OrderedDict = field(default_factory=OrderedDict)

    def refresh(self, adapter_name: str, block: nn.Module) -> None:
        """Fold the block's weights on first use and whenever one of its tensors was changed in place."""
        if not self.tensors:
            self.tensors = [*block.parameters(), *block.buffers()]
        versions = tuple(t._version for t in self.tensors)
        if versions != self.versions or block.training:
            self.stages = branch_stages(adapter_name, block)
            self.shortcut = shortcut_stages(adapter_name, block)
            self.versions = versions
            self.plans.clear()
            self.weights.clear()


def _cached(cache: OrderedDict, key: Any, build: Callable[[], Any]) -> Any:
    """LRU lookup: ``build()`` on a miss."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = build()
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value


def _stage_weights(stage: Stage, kept: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-clip sliced weights stacked for a grouped conv over ``n`` clips: (weight, bias, groups)."""
    w, b = stage.weight, stage.bias
    if kept is not None and stage.depthwise and stage.gate_in:
        return w[kept].flatten(0, 1), b[kept].flatten(), n * kept.shape[1]
    if stage.depthwise:
        return w.repeat(n, 1, 1, 1, 1), b.repeat(n), n * stage.groups
    if kept is not None and stage.gate_in and stage.gate_out:
        w = w[kept[:, :, None], kept[:, None, :]]  # (n, c, c, k...)
        return w.flatten(0, 1), b[kept].flatten(), n
    if kept is not None and stage.gate_out:
        return w[kept].flatten(0, 1), b[kept].flatten(), n
    if kept is not None and stage.gate_in:
        w = w[:, kept].transpose(0, 1)  # (n, C_out, c, k...)
        return w.flatten(0, 1), b.repeat(n), n
    return (w.repeat(n, 1, 1, 1, 1), b.repeat(n), n) if n > 1 else (w, b, 1)


def _bucket_weights(stages: list[Stage], channels: np.ndarray, kept_count: int, device: torch.device) -> Weights:
    with compact_range(WEIGHT_SLICING):
        n, total = channels.shape
        kept = None
        if kept_count < total:
            kept = torch.as_tensor(np.nonzero(channels)[1].reshape(n, kept_count), device=device)
        return [_stage_weights(st, kept if (st.gate_in or st.gate_out) else None, n) for st in stages]


def _gather(act: torch.Tensor, g: Gather) -> torch.Tensor:
    """Cut tile regions (S, R', n, C, D, rh, rw) out of a whole-map activation (S, 1, n, C, D, h, w)."""
    with compact_range(GATHER):
        n, channels = act.shape[2], act.shape[3]
        dev = act.device
        b = torch.arange(n, device=dev).view(1, 1, n, 1, 1)
        c = torch.arange(channels, device=dev).view(1, 1, 1, channels, 1)
        rh, rw, sh, sw = g.region
        act = F.pad(act, g.pad_hw).unfold(5, rh, sh).unfold(6, rw, sw)  # (S, 1, n, C, D, rows, cols, rh, rw)
        return act[0, 0, b, c, g.frames, g.rows, g.cols]


def _run_branch(stages: list[Stage], plan: BucketPlan, x: torch.Tensor, weights: Weights) -> torch.Tensor:
    """The residual branch on the planned positions: (S, R, n, C_out, D, h, w)."""
    n = x.shape[0]
    act = x.reshape(1, 1, *x.shape)
    for stage, sp, (weight, bias, groups) in zip(stages, plan.stages, weights, strict=True):
        if sp.gather is not None:
            act = _gather(act, sp.gather)
        s_, r_, _, channels, depth, h, w = act.shape
        with compact_range(CONVOLUTIONS):
            out = conv3d(
                act.reshape(s_ * r_, n * channels, depth, h, w),
                weight,
                bias,
                stride=stage.stride,
                padding=(stage.padding[0], *((0, 0) if sp.tiled else stage.padding[1:])),
                groups=groups,
            )
        if stage.act is not None:
            out = stage.act(out)
        act = out.view(s_, r_, n, -1, *out.shape[2:])
        if sp.mask is not None:
            act.mul_(sp.mask)
    return act


def _flat_index(positions: torch.Tensor, rows: torch.Tensor | None, channels: int, length: int) -> torch.Tensor:
    """Indices into a ``(B, C, length)`` tensor flattened over its first two dimensions (or all three):
    ``positions`` (n, P) along ``length`` in every channel of the clips ``rows`` (None: 0..n-1)."""
    clips = torch.arange(positions.shape[0], device=positions.device) if rows is None else rows
    base = (clips[:, None] * channels + torch.arange(channels, device=positions.device)[None, :]) * length
    return (base[:, :, None] + positions[:, None, :]).flatten()


def _plan_index(plan: BucketPlan, kind: str, rows: torch.Tensor | None, channels: int, length: int) -> torch.Tensor:
    """:func:`_flat_index` of the plan's input or output frames; for a bucket of the whole batch (``rows`` None)
    cached on the plan, whose shapes are fixed."""
    positions = plan.input_frames if kind == "input" else plan.output_frames
    if rows is not None:
        return _flat_index(positions, rows, channels, length)
    index = plan.flat_indices.get(kind)
    if index is None:
        index = plan.flat_indices[kind] = _flat_index(positions, None, channels, length)
    return index


def _bucket_input(x: torch.Tensor, plan: BucketPlan, rows: torch.Tensor | None) -> torch.Tensor:
    """The bucket's clips of ``x``, compressed to the input frames of their kept frames: (n, C, D, H, W)."""
    with compact_range(GATHER):
        if plan.input_frames is None:
            return (x if rows is None else x.index_select(0, rows)).contiguous()
        batch, channels, length, height, width = x.shape
        index = _plan_index(plan, "input", rows, channels, length)  # rows of a (B * C * T, H * W) view
        flat = x.reshape(batch * channels * length, height * width).index_select(0, index)
        return flat.view(plan.input_frames.shape[0], channels, -1, height, width)


def _add_residual(out: torch.Tensor, plan: BucketPlan, residual: torch.Tensor, rows: torch.Tensor | None) -> None:
    """``out[rows] += residual`` at the bucket's kept positions (``rows``: the bucket's clips, None = all)."""
    with compact_range(SCATTER):
        _scatter_residual(out, plan, residual, rows)


def _scatter_residual(out: torch.Tensor, plan: BucketPlan, residual: torch.Tensor, rows: torch.Tensor | None) -> None:
    if plan.residual_mask is not None:
        residual.mul_(plan.residual_mask)
    batch, channels, length = out.shape[:3]
    n = residual.shape[2]
    if plan.output_frames is not None:  # whole-map residual of the kept frames
        index = _plan_index(plan, "output", rows, channels, length)
        out.view(batch * channels * length, -1).index_add_(0, index, residual.reshape(index.shape[0], -1))
        return
    if plan.scatter is None:  # residual covers every position
        residual = residual.reshape(n, *out.shape[1:])
        if rows is None:
            out.add_(residual)
        else:
            out.index_add_(0, rows, residual)
        return
    flat = residual.permute(2, 3, 0, 1, 4, 5, 6).reshape(n, channels, -1)
    if rows is None:
        out.view(batch, channels, -1).scatter_add_(2, plan.scatter.expand(n, channels, flat.shape[2]), flat)
        return
    index = _flat_index(plan.scatter[:, 0], rows, channels, out[0, 0].numel())
    out.view(-1).index_add_(0, index, flat.flatten())


def _bucket_plan(
    gated: nn.Module,
    frames: np.ndarray,
    tiles: np.ndarray,
    level: tuple[int, int, int],
    shape: tuple[int, ...],
    device: torch.device,
    *,
    dense: bool,
) -> BucketPlan:
    """The (cached) plan of one bucket of inputs ``shape``; ``dense``: all spatial positions of the kept frames."""
    runtime: BlockRuntime = gated.compact_runtime
    key = (dense, frames.tobytes(), tiles.tobytes(), level, shape)

    def build() -> BucketPlan:
        with compact_range(PLAN_BUILDING):
            return build_plan(
                runtime.stages,
                in_size=tuple(shape[2:]),
                grid=gated.grid,
                frames=[np.nonzero(f)[0] for f in frames],
                frame_stride=gated.frame_stride,
                tiles=[np.nonzero(t)[0] for t in tiles],
                inner_kept=level[1],
                device=device,
                dense_positions=dense,
            )

    return _cached(runtime.plans, key, build)


def _positions_dense(level_choice: str | None, plan: BucketPlan) -> bool:
    """The calibrated choice where there is one, else the analytic default."""
    if level_choice is not None:
        return level_choice == "dense"
    return plan.compact_macs > DEFAULT_COMPACT_RATIO * plan.dense_macs


DEFAULT_COMPACT_RATIO = 0.8
"""Untuned default: run a bucket on tiles when its planned MACs (spatial halo included) are at most
80% of its all-positions MACs; gathers and scatters cost the rest."""


def _shortcut(gated: nn.Module, stages: list[Stage] | None, x: torch.Tensor) -> torch.Tensor:
    if stages is None:
        with fast_conv_backend():
            return gated.adapter.shortcut(gated.block, x)
    for st in stages:
        with compact_range(CONVOLUTIONS):
            x = conv3d(x, st.weight, st.bias, stride=st.stride, padding=st.padding, groups=st.groups)
    return x


def compact_block(gated: nn.Module, x: torch.Tensor, run: CompactRun) -> torch.Tensor | None:
    """Output of one gated block for the whole batch, or ``None`` when its branch is not supported."""
    runtime: BlockRuntime = gated.compact_runtime
    runtime.refresh(gated.adapter.name, gated.block)
    if runtime.stages is None:
        return None
    with torch._C.DisableTorchFunction():  # no per-op Python dispatch of fast_conv_backend in here
        return _compact_block(gated, runtime, x, run)


def _compact_block(gated: nn.Module, runtime: BlockRuntime, x: torch.Tensor, run: CompactRun) -> torch.Tensor:
    stages = runtime.stages
    host = run.host[gated.index]
    shortcut = _shortcut(gated, runtime.shortcut, x)
    if shortcut is x or not shortcut.is_contiguous():  # identity shortcut: never write into the block input
        shortcut = shortcut.clone(memory_format=torch.contiguous_format)
    out = shortcut  # the shortcut alone wherever nothing is kept; residuals are added in place
    buckets = host.buckets()
    for level, clips in buckets.items():
        rows = None if len(buckets) == 1 else torch.as_tensor(clips, device=x.device)
        shape = (len(clips), *x.shape[1:])
        frames, tiles, channels = host.frames[clips], host.tiles[clips], host.channels[clips]
        weights = _cached(
            runtime.weights,
            (channels.tobytes(), len(clips), level[1]),
            lambda ch=channels, level=level: _bucket_weights(stages, ch, level[1], x.device),
        )
        choice = run.calibration.choice(gated.index, level) if run.calibration is not None else None
        plan = None
        if choice != "dense":
            plan = _bucket_plan(gated, frames, tiles, level, shape, x.device, dense=False)
        if plan is None or _positions_dense(choice, plan):
            plan = _bucket_plan(gated, frames, tiles, level, shape, x.device, dense=True)
        _add_residual(out, plan, _run_branch(stages, plan, _bucket_input(x, plan, rows), weights), rows)
    return output_activation(gated.adapter.name, gated.block)(out)


__all__ = ["BlockRuntime", "CompactRun", "HostDecision", "compact_block", "host_decisions"]
