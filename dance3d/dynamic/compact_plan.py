"""Host-side plan of one compact bucket: which frames and tiles each branch stage computes.

All clips of a bucket share ``(kept frames, kept channels, kept tiles)``. Frames follow the
compressed-clip semantics (:mod:`dance3d.dynamic.model`): each clip's input frames under its kept
output frames are gathered into a shorter clip that every stage runs on with its ordinary temporal
stride and padding, so no temporal halo is computed. Activations are 7-D ``(S, R, n, C, D, h, w)``
(``S`` = 1): ``n`` clips (stacked in the channel dimension for a grouped conv), ``R`` spatial
regions (kept tiles with their halo, or the whole map). Spatially, stages before ``tile_from`` run
on the whole map; from ``tile_from`` on, on tile regions with padding 0, positions outside the map
zeroed (as the next conv's zero padding would see them). Everything here is index arithmetic on
the host, done once per distinct decision and cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from dance3d.dynamic.compact_branch import Stage
from dance3d.dynamic.decisions import TileGrid


@dataclass
class Gather:
    """Index tensors that cut tile regions (with halo) out of a whole-map activation (S, 1, n, C, D, h, w)."""

    frames: torch.Tensor  # d index, (1, 1, 1, 1, D)
    rows: torch.Tensor  # tile row / col index, (1, R, n, 1, 1)
    cols: torch.Tensor
    pad_hw: tuple[int, int, int, int]  # spatial zero padding before cutting regions (l, r, t, b)
    region: tuple[int, int, int, int]  # (rh, rw, step_h, step_w) of the regions


@dataclass
class StagePlan:
    gather: Gather | None
    tiled: bool
    mask: torch.Tensor | None  # (1, R, n, 1, 1, h, w) float, zeroes out-of-map positions


@dataclass
class BucketPlan:
    input_frames: torch.Tensor | None  # (n, stride x kept) input frames to gather; None: all
    stages: list[StagePlan]
    output_frames: torch.Tensor | None  # (n, kept) frames a whole-map residual lands on; None: all
    scatter: torch.Tensor | None  # (n, 1, P) flat output positions of a tiled residual, None: whole map
    residual_mask: torch.Tensor | None  # multiplies the residual before scatter / add
    compact_macs: int
    dense_macs: int  # all spatial positions of the same (compressed) clip
    flat_indices: dict = field(default_factory=dict)  # gather / scatter indices, built on first use


def stage_sizes(stages: list[Stage], size: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Input size of every stage plus the output size of the last, per axis (T, H, W)."""
    sizes = [tuple(size)]
    for st in stages:
        k, s, p = st.kernel, st.stride, st.padding
        sizes.append(tuple((sizes[-1][a] + 2 * p[a] - k[a]) // s[a] + 1 for a in range(3)))
    return sizes  # type: ignore[return-value]


def _regions(stages: list[Stage], grid: TileGrid) -> list[tuple[int, int, int, int, int, int]]:
    """Per stage (input side): (base_h, step_h, len_h, base_w, step_w, len_w) of tile regions; and output side last."""
    base = [0, 0]
    step = [grid.tile_h, grid.tile_w]
    length = [grid.tile_h, grid.tile_w]
    out = [(base[0], step[0], length[0], base[1], step[1], length[1])]
    for st in reversed(stages):
        for a in (0, 1):
            k, s, p = st.kernel[a + 1], st.stride[a + 1], st.padding[a + 1]
            base[a], step[a], length[a] = s * base[a] - p, s * step[a], s * (length[a] - 1) + k
        out.append((base[0], step[0], length[0], base[1], step[1], length[1]))
    return out[::-1]  # index j: input side of stage j; index L: output of the last stage


def _valid(base: int, step: int, length: int, count: int, size: int) -> np.ndarray:
    pos = base + step * np.arange(count)[:, None] + np.arange(length)[None, :]
    return (pos >= 0) & (pos < size)


def _stage_macs(stage: Stage, channels_in: int, channels_out: int, positions: int) -> int:
    per_group_in = 1 if stage.depthwise else channels_in // stage.groups
    return positions * channels_out * per_group_in * math.prod(stage.kernel)


def build_plan(
    stages: list[Stage],
    *,
    in_size: tuple[int, int, int],
    grid: TileGrid,
    frames: list[np.ndarray],
    frame_stride: int | None,
    tiles: list[np.ndarray],
    inner_kept: int,
    device: torch.device,
    dense_positions: bool = False,
) -> BucketPlan:
    """Plan one bucket: ``frames`` / ``tiles`` are each clip's kept output frame / tile indices.

    ``dense_positions``: compute every spatial position of the kept frames (sliced channels) and
    mask the skipped tiles.
    """
    n, L = len(frames), len(stages)
    out_t, out_h, out_w = stage_sizes(stages, in_size)[-1]
    kept_f, kept_t = len(frames[0]), len(tiles[0])
    n_tiles = grid.rows * grid.cols
    compress = kept_f < out_t
    if compress and frame_stride is None:
        raise ValueError("frames are skipped in a block whose frames are not gated (no frame stride)")
    stride = frame_stride or 1
    sizes = stage_sizes(stages, (stride * kept_f, *in_size[1:]) if compress else in_size)
    if sizes[-1][0] != kept_f:
        raise ValueError(f"the branch maps {sizes[0][0]} frames to {sizes[-1][0]}, not {kept_f}")

    def widths(st: Stage) -> tuple[int, int]:  # sliced inner channels
        cin = inner_kept if st.gate_in else st.weight.shape[1] * st.groups
        cout = inner_kept if st.gate_out else st.weight.shape[0]
        if st.depthwise and not st.gate_in:
            cin = st.weight.shape[0]
        return cin, cout

    regions = _regions(stages, grid)

    def cost(tile_from: int) -> int:
        total = 0
        for j, st in enumerate(stages):
            t, h, w = sizes[j + 1]
            area = kept_t * regions[j + 1][2] * regions[j + 1][5] if j >= tile_from else h * w
            total += _stage_macs(st, *widths(st), t * area)
        return total * n

    tile_from = L if dense_positions or kept_t == n_tiles else min(range(L + 1), key=cost)
    compact_macs = cost(tile_from)
    dense_macs = cost(L)

    tile_idx = np.stack([np.asarray(t, dtype=np.int64) for t in tiles])  # (n, kept_t)
    tile_rows, tile_cols = tile_idx // grid.cols, tile_idx % grid.cols

    def tensor(a: np.ndarray, dtype=torch.int64) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(device, non_blocking=True)

    def mask_for(j: int) -> torch.Tensor | None:
        bh, sh, lh, bw, sw, lw = regions[j + 1]
        vh = _valid(bh, sh, lh, grid.rows, sizes[j + 1][1])
        vw = _valid(bw, sw, lw, grid.cols, sizes[j + 1][2])
        if vh.all() and vw.all():
            return None
        m = vh[tile_rows][..., :, None] & vw[tile_cols][..., None, :]  # (n, R, lh, lw)
        return tensor(m.transpose(1, 0, 2, 3)[None, :, :, None, None].astype(np.float32), torch.float32)

    plans: list[StagePlan] = []
    for j in range(L):
        gather = None
        if j == tile_from:
            bh, sh, lh, bw, sw, lw = regions[j]
            pad_b = max(0, bh + (grid.rows - 1) * sh + lh - sizes[j][1])
            pad_r = max(0, bw + (grid.cols - 1) * sw + lw - sizes[j][2])
            gather = Gather(
                tensor(np.arange(sizes[j][0])[None, None, None, None, :]),
                tensor(tile_rows.T[None, :, :, None, None]),
                tensor(tile_cols.T[None, :, :, None, None]),
                pad_hw=(-bw, pad_r, -bh, pad_b),
                region=(lh, lw, sh, sw),
            )
        plans.append(StagePlan(gather, j >= tile_from, mask_for(j) if j >= tile_from else None))

    kept_frames = np.stack([np.asarray(f, dtype=np.int64) for f in frames])  # (n, kept_f)
    input_frames = None
    if compress:
        wanted = (kept_frames[:, :, None] * stride + np.arange(stride)).reshape(n, -1)
        input_frames = tensor(wanted)
    position_mask = None  # (n, H, W): kept tiles, when the residual covers the whole map
    if tile_from == L and kept_t < n_tiles:
        tm = np.zeros((n, n_tiles), dtype=np.float32)
        np.put_along_axis(tm, tile_idx, 1.0, axis=1)
        position_mask = grid.expand(torch.from_numpy(tm)).numpy() > 0

    # residual -> output positions
    if tile_from == L:  # residual covers the whole map of its frames
        residual_mask = None
        if position_mask is not None:
            residual_mask = tensor(position_mask[None, None, :, None, None].astype(np.float32), torch.float32)
        output_frames = tensor(kept_frames) if compress else None
        return BucketPlan(input_frames, plans, output_frames, None, residual_mask, compact_macs, dense_macs)
    bh, sh, lh, bw, sw, lw = regions[L]
    hh = bh + sh * tile_rows[:, :, None] + np.arange(lh)[None, None, :]  # (n, R, lh)
    ww = bw + sw * tile_cols[:, :, None] + np.arange(lw)[None, None, :]
    valid = (hh < out_h)[:, :, :, None] & (ww < out_w)[:, :, None, :]  # (n, R, lh, lw)
    spatial = np.where(valid, hh[:, :, :, None] * out_w + ww[:, :, None, :], 0)
    out_frames = kept_frames if compress else np.broadcast_to(np.arange(out_t), (n, out_t))
    # positions in the residual's order (n, R, D, lh, lw)
    flat = out_frames[:, None, :, None, None] * (out_h * out_w) + spatial[:, :, None]
    ok = np.broadcast_to(valid[:, :, None], flat.shape)
    scatter = tensor(np.where(ok, flat, 0).reshape(n, 1, -1))
    residual_mask = None
    if not ok.all():  # -> (S, R, n, 1, D, lh, lw)
        residual_mask = tensor(ok.transpose(1, 0, 2, 3, 4)[None, :, :, None].astype(np.float32), torch.float32)
    return BucketPlan(input_frames, plans, None, scatter, residual_mask, compact_macs, dense_macs)
