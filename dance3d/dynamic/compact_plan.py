"""Host-side plan of one compact bucket: which frames and tiles each branch stage computes.

All clips of a bucket share ``(kept frames, kept channels, kept tiles)``. Working backwards from
the kept output positions, each stage must compute its output on the positions the next stage
reads (the halo). Activations are 7-D ``(S, R, n, C, D, h, w)``: ``n`` clips (stacked in the
channel dimension for a grouped conv), ``R`` spatial regions (kept tiles with halo, or the whole
map), and frames either **full** (``S = 1``, ``D`` = all frames, ordinary temporal padding) or as
**windows** (``S`` slots, one per computed output frame, each holding the ``k`` input frames its
temporal kernel reads; out-of-range frames point at an appended zero frame). Spatially, stages
before ``tile_from`` run on the whole map; from ``tile_from`` on, on tile regions with padding 0,
positions outside the map zeroed (as the next conv's zero padding would see them). Everything here
is index arithmetic on the host, done once per distinct decision and cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dance3d.dynamic.compact_branch import Stage
from dance3d.dynamic.decisions import TileGrid


@dataclass(frozen=True)
class PlanSettings:
    """Plan choices: compute a stage on all frames above ``full_frame_fraction`` of them; pad per-stage
    frame slots to a static bound per bucket (``static_shapes``, for GPUs) or to the bucket's need."""

    full_frame_fraction: float = 0.85
    static_shapes: bool = False


@dataclass
class Gather:
    """Index tensors that build a stage's input from the previous activation (broadcast to (S', R', n, C, k'))."""

    frames: torch.Tensor  # d index, (S', R'|1, n|1, 1, k')
    slots: torch.Tensor | None  # s index into a windows source, same shape as frames
    rows: torch.Tensor | None  # tile row / col index when regions are cut here, (1, R', n, 1, 1)
    cols: torch.Tensor | None
    zero_frame: bool  # append a zero frame (full source) or slot (windows source) first
    pad_hw: tuple[int, int, int, int] | None  # spatial zero padding before cutting regions (l, r, t, b)
    region: tuple[int, int, int, int] | None  # (rh, rw, step_h, step_w) of the regions


@dataclass
class StagePlan:
    gather: Gather | None
    full_frames: bool
    tiled: bool
    mask: torch.Tensor | None  # (1, R, n, 1, 1, h, w) float, zeroes out-of-map positions


@dataclass
class BucketPlan:
    stages: list[StagePlan]
    scatter: torch.Tensor | None  # (n, 1, P) flat output positions, None: residual covers the full output
    residual_mask: torch.Tensor | None  # multiplies the residual before scatter / add
    compact_macs: int
    dense_macs: int


def stage_sizes(stages: list[Stage], size: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Input size of every stage plus the output size of the last, per axis (T, H, W)."""
    sizes = [tuple(size)]
    for st in stages:
        k, s, p = st.kernel, st.stride, st.padding
        sizes.append(tuple((sizes[-1][a] + 2 * p[a] - k[a]) // s[a] + 1 for a in range(3)))
    return sizes  # type: ignore[return-value]


def _needed_frames(stage: Stage, out_frames: np.ndarray, in_size: int) -> np.ndarray:
    k, s, p = stage.kernel[0], stage.stride[0], stage.padding[0]
    wanted = (s * out_frames[:, None] - p + np.arange(k)[None, :]).ravel()
    return np.unique(wanted[(wanted >= 0) & (wanted < in_size)])


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
    tiles: list[np.ndarray],
    inner_kept: int,
    settings: PlanSettings,
    device: torch.device,
    dense_positions: bool = False,
) -> BucketPlan:
    """Plan one bucket: ``frames`` / ``tiles`` are each clip's kept output frame / tile indices.

    ``dense_positions``: compute every position (sliced channels only) and mask the skipped ones.
    """
    n, L = len(frames), len(stages)
    sizes = stage_sizes(stages, in_size)
    out_t, out_h, out_w = sizes[-1]
    kept_f, kept_t = len(frames[0]), len(tiles[0])
    n_tiles = grid.rows * grid.cols

    # frames each stage computes, per clip (backwards), and slot counts
    sets: list[list[np.ndarray]] = [[] for _ in range(L)]
    sets[L - 1] = [np.asarray(f, dtype=np.int64) for f in frames]
    slots = [0] * L
    slots[L - 1] = kept_f
    for j in range(L - 1, 0, -1):
        sets[j - 1] = [_needed_frames(stages[j], o, sizes[j][0]) for o in sets[j]]
        bound = min(sizes[j][0], stages[j].kernel[0] * slots[j])
        slots[j - 1] = bound if settings.static_shapes else max(len(o) for o in sets[j - 1])
    full: list[bool] = []
    for j in range(L):
        enough = slots[j] >= settings.full_frame_fraction * sizes[j + 1][0]
        full.append(dense_positions or ((not full or full[-1]) and enough))

    # channels per stage (sliced inner channels)
    def widths(st: Stage) -> tuple[int, int]:
        cin = inner_kept if st.gate_in else st.weight.shape[1] * st.groups
        cout = inner_kept if st.gate_out else st.weight.shape[0]
        if st.depthwise and not st.gate_in:
            cin = st.weight.shape[0]
        return cin, cout

    regions = _regions(stages, grid)
    frames_done = [sizes[j + 1][0] if full[j] else slots[j] for j in range(L)]

    def cost(tile_from: int) -> int:
        total = 0
        for j, st in enumerate(stages):
            if j >= tile_from:
                area = kept_t * regions[j + 1][2] * regions[j + 1][5]
            else:
                area = sizes[j + 1][1] * sizes[j + 1][2]
            total += _stage_macs(st, *widths(st), frames_done[j] * area)
        return total * n

    tile_from = L if dense_positions or kept_t == n_tiles else min(range(L + 1), key=cost)
    compact_macs = cost(tile_from)
    dense_macs = n * sum(_stage_macs(st, *widths(st), math.prod(sizes[j + 1])) for j, st in enumerate(stages))

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
    for j, st in enumerate(stages):
        tiled = j >= tile_from
        cut = tiled and j == tile_from
        k, s, p = st.kernel[0], st.stride[0], st.padding[0]
        region = None
        pad_hw = None
        rows = cols = None
        if cut:
            bh, sh, lh, bw, sw, lw = regions[j]
            h_in, w_in = sizes[j][1], sizes[j][2]
            pad_t, pad_l = -bh, -bw
            pad_b = max(0, bh + (grid.rows - 1) * sh + lh - h_in)
            pad_r = max(0, bw + (grid.cols - 1) * sw + lw - w_in)
            pad_hw, region = (pad_l, pad_r, pad_t, pad_b), (lh, lw, sh, sw)
            rows = tensor(tile_rows.T[None, :, :, None, None])
            cols = tensor(tile_cols.T[None, :, :, None, None])
        gather = None
        if full[j]:
            if cut:
                t_in = sizes[j][0]
                gather = Gather(tensor(np.arange(t_in)[None, None, None, None, :]), None, rows, cols, False,
                                pad_hw, region)  # fmt: skip
        else:
            src_full = j == 0 or full[j - 1]
            t_src = sizes[j][0]
            d = np.zeros((slots[j], n, k), dtype=np.int64)
            sl = np.zeros((slots[j], n, k), dtype=np.int64)
            zero = False
            for b in range(n):
                out_frames = sets[j][b]
                padded = np.concatenate([out_frames, np.full(slots[j] - len(out_frames), out_frames[-1])])
                wanted = s * padded[:, None] - p + np.arange(k)[None, :]
                inside = (wanted >= 0) & (wanted < t_src)
                zero = zero or not inside.all()
                if src_full:
                    d[:, b] = np.where(inside, wanted, t_src)
                else:
                    src = sets[j - 1][b]
                    pos = np.searchsorted(src, np.clip(wanted, 0, t_src - 1))
                    sl[:, b] = np.where(inside, pos, slots[j - 1])
            identity = (
                not src_full and k == 1 and not zero and not cut and slots[j] == slots[j - 1]
                and all(np.array_equal(sl[:, b, 0], np.arange(slots[j])) for b in range(n))
            )  # fmt: skip
            if not identity:
                gather = Gather(
                    tensor(d[:, None, :, None, :]),
                    None if src_full else tensor(sl[:, None, :, None, :]),
                    rows,
                    cols,
                    zero,
                    pad_hw,
                    region,
                )
        plans.append(StagePlan(gather, full[j], tiled, mask_for(j) if tiled else None))

    # residual -> output positions
    scatter = residual_mask = None
    kept_all_frames = kept_f == out_t
    if tile_from == L and full[-1]:  # whole output computed: mask skipped positions (if any)
        if not (kept_all_frames and kept_t == n_tiles):
            fm = np.zeros((n, out_t), dtype=np.float32)
            for b in range(n):
                fm[b, frames[b]] = 1.0
            tm = np.zeros((n, n_tiles), dtype=np.float32)
            np.put_along_axis(tm, tile_idx, 1.0, axis=1)
            pos = grid.expand(torch.from_numpy(tm)).numpy()  # (n, H, W)
            residual_mask = tensor((fm[:, :, None, None] * pos[:, None])[None, None, :, None], torch.float32)
    else:
        bh, sh, lh, bw, sw, lw = regions[L] if tile_from < L else (0, 0, out_h, 0, 0, out_w)
        r_rows = tile_rows if tile_from < L else np.zeros((n, 1), dtype=np.int64)
        r_cols = tile_cols if tile_from < L else np.zeros((n, 1), dtype=np.int64)
        hh = bh + sh * r_rows[:, :, None] + np.arange(lh)[None, None, :]  # (n, R, lh)
        ww = bw + sw * r_cols[:, :, None] + np.arange(lw)[None, None, :]
        valid = (hh < out_h)[:, :, :, None] & (ww < out_w)[:, :, None, :]  # (n, R, lh, lw)
        spatial = np.where(valid, hh[:, :, :, None] * out_w + ww[:, :, None, :], 0)
        if full[-1]:
            fr = np.broadcast_to(np.arange(out_t), (n, out_t))  # (n, D) with S = 1
            keep = np.zeros((n, out_t), dtype=bool)
            for b in range(n):
                keep[b, frames[b]] = True
            keep = keep[:, None, :]
            fr = fr[:, None, :]  # (n, S=1, D)
        else:
            fr = np.stack(sets[L - 1])[:, :, None]  # (n, S=K, D=1)
            keep = np.ones_like(fr, dtype=bool)
        # positions in the residual's order (n, S, R, D, lh, lw)
        flat = fr[:, :, None, :, None, None] * (out_h * out_w) + spatial[:, None, :, None]
        ok = keep[:, :, None, :, None, None] & valid[:, None, :, None]
        flat = np.where(ok, flat, 0)
        scatter = tensor(flat.reshape(n, 1, -1))
        if not ok.all():  # -> (S, R, n, 1, D, lh, lw)
            residual_mask = tensor(ok.transpose(1, 2, 0, 3, 4, 5)[:, :, :, None].astype(np.float32), torch.float32)
    return BucketPlan(plans, scatter, residual_mask, compact_macs, dense_macs)
