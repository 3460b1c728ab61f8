"""The DANCE controller: reads the stem (first conv) output, emits per-gate unit logits.

Statistics of the stem output ``s`` (B, C, T, H, W) it computes (cheap reductions):

- per channel: mean ``|s|``;
- per frame: mean ``|s|`` (also relative to the clip's mean) and **motion**, the largest local
  frame difference ``max_xy |pool(s_t) - pool(s_{t-1})|`` on the stem pooled over ``POOL x POOL``
  pixels, also relative to the clip's upper quartile of motion (a frame inside a pause scores far
  below the clip's moving frames, whatever the clip's speed or noise level);
- per tile of each gate's tile grid: mean ``|s|`` and mean frame difference over time, each also
  relative to the clip's mean.

A small MLP turns the global statistics into a context vector; per gate, frame logits are a
linear function of the per-frame features (resampled to the gate's temporal length) plus a
context bias, tile logits likewise from per-tile features, channel logits a linear map of the
context (with ``channel_context_shift``, plus a per-gate context bias shared by all of the gate's
channels, the counterpart of the frame and tile context biases). Positive logits mean "keep".
Biases start at ``init_logit``; per-frame (per-tile) weights start at a prior (``prior_weight``)
that keeps frames moving about as much as the clip's moving frames and drops frames well below
them (tiles: prefers tiles with more activity and motion than the clip's mean), so an untrained
controller already skips the frames of a pause.

Channel biases start at ``init_logit``, all equal: every channel crosses zero at about the same
Adam step (Adam moves each bias at about the learning rate, whatever the size of its gradient), so
a gate's kept count tends to jump between levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

_EPS = 1e-4
FRAME_FEATURES = 4
TILE_FEATURES = 4
POOL = 4


@dataclass(frozen=True)
class GateSpec:
    """What one gated block decides over: its output frames, inner channels and tile grid."""

    num_frames: int
    num_channels: int
    tile_grid: tuple[int, int]

    @property
    def num_tiles(self) -> int:
        return self.tile_grid[0] * self.tile_grid[1]


@dataclass(frozen=True)
class LogitLayout:
    """Where each gate's frame, channel and tile logits lie in the controller's flat logits (B, total)."""

    frames: tuple[slice, ...]
    channels: tuple[slice, ...]
    tiles: tuple[slice, ...]
    total: int


@dataclass
class StemControllerOutput:
    """Every gate's unit logits in one tensor ``logits`` (B, total), and per-gate views of them.

    One tensor so that compact execution copies all decisions' inputs to the host at once; the
    per-gate lists (aligned with the controller's gate specs) are views made on first access.
    """

    logits: torch.Tensor
    layout: LogitLayout

    @functools.cached_property
    def frame_logits(self) -> list[torch.Tensor]:  # (B, num_frames) per gate
        return [self.logits[:, s] for s in self.layout.frames]

    @functools.cached_property
    def channel_logits(self) -> list[torch.Tensor]:  # (B, num_channels) per gate
        return [self.logits[:, s] for s in self.layout.channels]

    @functools.cached_property
    def tile_logits(self) -> list[torch.Tensor]:  # (B, num_tiles) per gate
        return [self.logits[:, s] for s in self.layout.tiles]


def _relative_log(values: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    log = torch.log(values + _EPS)
    return log, log - log.mean(dim=dims, keepdim=True)


def _upper_quartile(values: torch.Tensor) -> torch.Tensor:
    """Per row of ``values`` (B, n): the upper quartile, nearest rank (B, 1)."""
    rank = round(0.75 * (values.shape[1] - 1)) + 1
    return values.kthvalue(rank, dim=1, keepdim=True).values


def _average_pool(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``F.avg_pool3d(x, (1, pool, pool))`` of (B, C, T, H, W), summed as strided views: about twice as fast on
    CPU (avg_pool3d's kernel is slow on these small maps); the same values up to float rounding."""
    height, width = x.shape[3] // pool * pool, x.shape[4] // pool * pool  # incomplete windows are dropped
    rows = x[..., :height, :width].unflatten(3, (height // pool, pool))  # (B, C, T, h, pool, W)
    summed = rows[:, :, :, :, 0]
    for i in range(1, pool):
        summed = summed + rows[:, :, :, :, i]
    cols = summed.unflatten(4, (width // pool, pool))  # (B, C, T, h, w, pool)
    total = cols[..., 0]
    for i in range(1, pool):
        total = total + cols[..., i]
    return total * (1.0 / (pool * pool))


def _stacked_linear(layers: list[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """The outputs of several linear layers on the same input, concatenated along the last dim, as one matmul."""
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias for layer in layers])
    return F.linear(x, weight, bias)


def _tile_features(level_map: torch.Tensor, diff_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per tile (B, n_tiles, 4): log activity and log motion, each also relative to the clip's mean."""
    level, level_rel = _relative_log(F.adaptive_avg_pool2d(level_map[:, None], grid).flatten(1), (1,))
    diff, diff_rel = _relative_log(F.adaptive_avg_pool2d(diff_map[:, None], grid).flatten(1), (1,))
    return torch.stack([level, level_rel, diff, diff_rel], dim=2)


def _groups(keys: list) -> list[tuple[Any, list[int], slice | list[int]]]:
    """Gates of equal keys (gates of one stage share their geometry), in first-seen order: (key, members,
    their index into a per-gate dimension: a slice where they are consecutive)."""
    out: dict = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return [(key, m, slice(m[0], m[-1] + 1) if m == list(range(m[0], m[-1] + 1)) else m) for key, m in out.items()]


class StemController(nn.Module):
    """Lightweight controller; ``gates`` fixes its output sizes, ``stem_channels`` its input.

    ``temporal_edge``: frames at each end of the stem output distorted by temporal zero padding
    (see :meth:`maps`).
    """

    def __init__(
        self,
        stem_channels: int,
        gates: list[GateSpec],
        *,
        hidden: int = 64,
        init_logit: float = 3.0,
        prior_weight: float = 3.0,
        temporal_edge: int = 0,
    ) -> None:
        super().__init__()
        self.temporal_edge = temporal_edge
        self.gates = list(gates)
        self.stem_channels = stem_channels
        context_in = stem_channels + 4
        self.context = nn.Sequential(nn.Linear(context_in, hidden), nn.ReLU(inplace=True))
        self.frame_weights = nn.ModuleList(nn.Linear(FRAME_FEATURES, 1) for _ in gates)
        self.tile_weights = nn.ModuleList(nn.Linear(TILE_FEATURES, 1) for _ in gates)
        self.frame_bias = nn.ModuleList(nn.Linear(hidden, 1) for _ in gates)
        self.tile_bias = nn.ModuleList(nn.Linear(hidden, 1) for _ in gates)
        self.channel_heads = nn.ModuleList(nn.Linear(hidden, g.num_channels) for g in gates)
        for head in [*self.frame_bias, *self.tile_bias, *self.channel_heads]:
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, init_logit)
        self._frame_groups = _groups([g.num_frames for g in gates])  # gates of one geometry
        self._tile_groups = _groups([g.tile_grid for g in gates])  # share one matmul
        self.layout = self._logit_layout()
        with torch.no_grad():  # prior: prefer frames/tiles with more motion and activity than the clip's mean
            for head in self.frame_weights:
                head.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, prior_weight]]))
                head.bias.zero_()
            for head in self.tile_weights:
                head.weight.copy_(torch.tensor([[0.0, prior_weight / 2, 0.0, prior_weight / 2]]))
                head.bias.zero_()

    @staticmethod
    def maps(stem: torch.Tensor, *, edge: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Channel means (B, C), magnitude map (B, T, H, W), frame-difference map (B, T, H/4, W/4).

        Frame differences are taken on the stem output average-pooled over ``POOL x POOL`` pixels, so
        sensor noise (independent per frame) does not drown the motion of small objects. Frame 0
        repeats frame 1's difference. The first and last ``edge`` stem frames saw the temporal zero
        padding of the stem's convolutions, so differences involving them measure the padding, not
        motion: they repeat the nearest difference between two interior frames.
        """
        magnitude = stem.abs()
        channel = magnitude.mean(dim=(2, 3, 4))
        level = magnitude.mean(dim=1)
        pool = POOL if min(stem.shape[3:]) >= 4 * POOL else 1
        smooth = _average_pool(stem, pool) if pool > 1 else stem  # averages pixel noise out
        frames = stem.shape[2]
        if frames == 1:
            return channel, level, torch.zeros_like(smooth[:, 0])
        raw = (smooth[:, :, 1:] - smooth[:, :, :-1]).abs().mean(dim=1)  # raw[k]: frames k + 1 and k
        edge = min(edge, (frames - 2) // 2)
        first, last = edge + 1, frames - edge - 1  # interior differences: t in [first, last]
        source = [min(max(t, first), last) - 1 for t in range(frames)]  # frame t's difference in ``raw``
        diff = raw.index_select(1, torch.tensor(source, device=raw.device))
        return channel, level, diff

    def forward(self, stem: torch.Tensor) -> StemControllerOutput:
        if stem.shape[1] != self.stem_channels:
            raise ValueError(f"controller expects {self.stem_channels} stem channels, got {stem.shape[1]}")
        channel, level, diff = self.maps(stem, edge=self.temporal_edge)
        frame_level, frame_level_rel = _relative_log(level.mean(dim=(2, 3)), (1,))
        motion = torch.log(diff.amax(dim=(2, 3)) + _EPS)
        motion_rel = motion - _upper_quartile(motion)
        spread = (motion.std(1, unbiased=False), frame_level.std(1, unbiased=False))
        summary = torch.stack([frame_level.mean(1), motion.mean(1), *spread], dim=1)
        context = self.context(torch.cat([torch.log(channel + _EPS), summary], dim=1))
        per_frame = torch.stack([frame_level, frame_level_rel, motion, motion_rel], dim=1)  # (B, F, T)
        level_map, diff_map = level.mean(dim=1), diff.mean(dim=1)  # (B, H, W)
        n = len(self.gates)
        head_layers = [*self.frame_bias, *self.tile_bias, *self.channel_heads]
        heads = _stacked_linear(head_layers, context)
        frame_bias, tile_bias, channels = heads.split([n, n, heads.shape[1] - 2 * n], dim=1)
        parts = []
        for length, members, select in self._frame_groups:
            features = F.adaptive_avg_pool1d(per_frame, length).transpose(1, 2)  # (B, length, F)
            weights = [self.frame_weights[i] for i in members]
            out = _stacked_linear(weights, features) + frame_bias[:, None, select]
            parts.append(out.transpose(1, 2).flatten(1))  # (B, members x length): gate by gate
        for grid, members, select in self._tile_groups:
            features = _tile_features(level_map, diff_map, grid)
            weights = [self.tile_weights[i] for i in members]
            out = _stacked_linear(weights, features) + tile_bias[:, None, select]
            parts.append(out.transpose(1, 2).flatten(1))
        return StemControllerOutput(torch.cat([*parts, channels], dim=1), self.layout)

    def _logit_layout(self) -> LogitLayout:
        """The order :meth:`forward` writes logits in: frame groups, tile groups, then every gate's channels."""
        n = len(self.gates)
        frames: list[slice] = [slice(0)] * n
        tiles: list[slice] = [slice(0)] * n
        start = 0
        for groups, sizes, out in (
            (self._frame_groups, [g.num_frames for g in self.gates], frames),
            (self._tile_groups, [g.num_tiles for g in self.gates], tiles),
        ):
            for _, members, _ in groups:
                for i in members:
                    out[i] = slice(start, start + sizes[i])
                    start += sizes[i]
        channels = []
        for gate in self.gates:
            channels.append(slice(start, start + gate.num_channels))
            start += gate.num_channels
        return LogitLayout(tuple(frames), tuple(channels), tuple(tiles), start)

    def macs_per_clip(self, stem_shape: tuple[int, int, int, int]) -> int:
        """Analytic cost per clip of a stem output of shape (C, T, H, W): reductions + linear layers.

        Each reduction/difference over the stem output is counted as one MAC per element it reads
        (abs-mean: 1, pooling: 1, frame differences: 1, magnitude map: 1), so the count is an upper bound.
        """
        channels, frames, height, width = stem_shape
        reductions = 4 * channels * frames * height * width
        linear = sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))
        per_frame_gate = sum(g.num_frames * FRAME_FEATURES + g.num_tiles * TILE_FEATURES for g in self.gates)
        linear += per_frame_gate - sum(FRAME_FEATURES + TILE_FEATURES for _ in self.gates)
        return reductions + linear
