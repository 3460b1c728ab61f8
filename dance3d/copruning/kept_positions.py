"""A sample's kept positions as rows: each convolution one gather and one small dense product.

Compact execution of a tile-masked CNN holds each feature map as rows ``(frames, P, C)``: its values
at the ``P`` kept positions, in the map's row-major order. A conv at the kept output positions
gathers, for each tap, the row every output reads (zero for a position not kept and for the conv's
padding) and applies the conv's weights to the gathered taps, as one matrix product (short outputs)
or as a ``taps x 1`` conv (long ones, :data:`GEMM_BELOW`): it computes exactly the masked dense
conv's values at the kept positions, and exactly their MACs, with no halo recomputed. Group norms
take their statistics over the kept positions inside the map, as the masked dense model does. The
4-d tensors handed to convs and norms are channels-last views of the rows, so they need no layout
copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dance3d.copruning.tiles import position_mask
from dance3d.dynamic.decisions import TileGrid

UPSAMPLE_WEIGHTS = (9 / 16, 3 / 16, 3 / 16, 1 / 16)
"""2x bilinear weights of the (near, near), (near, other), (other, near), (other, other) source positions."""


@dataclass(frozen=True)
class Taps:
    """Where each tap of a conv reads, for each output position: ``index`` (taps, P) into the source rows;
    ``keep`` (taps, P) 0.0 where the tap reads a zero instead (None: it never does)."""

    index: torch.Tensor
    keep: torch.Tensor | None


class KeptPositions:
    """The kept positions of an ``(height, width)`` map, from a boolean position mask of that size."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.height, self.width = mask.shape
        self.flat = mask.flatten().nonzero().flatten()
        self.lookup = torch.full((self.height, self.width), -1, dtype=torch.long, device=mask.device)
        self.lookup.view(-1)[self.flat] = torch.arange(len(self), device=mask.device)

    @classmethod
    def whole(cls, height: int, width: int, *, device: torch.device) -> KeptPositions:
        """Every position of the map (the rows of a map computed in full)."""
        positions = cls.__new__(cls)
        positions.height, positions.width = height, width
        positions.flat = torch.arange(height * width, device=device)
        positions.lookup = positions.flat.reshape(height, width)
        return positions

    def __len__(self) -> int:
        return int(self.flat.numel())

    def taps(self, source: KeptPositions, conv: nn.Conv2d) -> Taps:
        """The source rows each tap of ``conv`` (square kernel) reads at each of these output positions."""
        kernel, stride, padding = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        padded = F.pad(source.lookup, (padding, padding, padding, padding), value=-1)
        padded_width = padded.shape[1]
        corner = (self.flat // self.width) * (stride * padded_width) + (self.flat % self.width) * stride  # (P,)
        offsets = torch.arange(kernel, device=corner.device)
        offsets = (offsets[:, None] * padded_width + offsets[None, :]).flatten()  # (taps,), row-major like the kernel
        index = padded.flatten().index_select(0, (offsets[:, None] + corner[None, :]).flatten())
        index = index.reshape(kernel * kernel, len(self))
        keep = index >= 0
        if bool(keep.all()):
            return Taps(index, None)
        return Taps(index.clamp(min=0), keep.float())

    def scatter(self, rows: torch.Tensor) -> torch.Tensor:
        """(frames, P, C) rows -> (frames, C, height, width) map (channels-last), zero outside the kept positions."""
        frames, _, channels = rows.shape
        canvas = rows.new_zeros(frames, self.height * self.width, channels)
        canvas.index_copy_(1, self.flat, rows)
        return canvas.reshape(frames, self.height, self.width, channels).permute(0, 3, 1, 2)


def upsample_rows(rows: torch.Tensor, source: KeptPositions, target: KeptPositions) -> torch.Tensor:
    """2x bilinear upsampling (``align_corners=False``, as ``nn.Upsample``) of a map held as ``rows`` at
    ``source``'s kept positions (zero elsewhere), computed only at ``target``'s positions of the 2x map:
    (frames, len(target), C). Each output mixes its 2 x 2 nearest source positions, edges clamped."""
    frames, channels = rows.shape[0], rows.shape[2]
    ys, xs = (
        _upsample_pair(target.flat // target.width, source.height),
        _upsample_pair(target.flat % target.width, source.width),
    )
    flat = (ys[:, None, :] * source.width + xs[None, :, :]).flatten()  # (2 * 2 * P,): (near, other) x (near, other)
    index = source.lookup.flatten().index_select(0, flat).reshape(4, -1)
    weight = torch.tensor(UPSAMPLE_WEIGHTS, dtype=rows.dtype, device=rows.device)[:, None] * (index >= 0)
    gathered = gather_taps(rows, index.clamp(min=0), None).reshape(frames, 4, -1, channels)
    return (gathered * weight[None, :, :, None]).sum(dim=1)


def _upsample_pair(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(2, P): the source coordinate nearest each 2x-upsampled coordinate along one axis (weight 3/4) and
    the other one it reads (weight 1/4), clamped to the map."""
    nearest = coords // 2
    other = (nearest + torch.where(coords % 2 == 1, 1, -1)).clamp(0, size - 1)
    return torch.stack([nearest, other])


def kept_at_scales(kept: torch.Tensor, grid: TileGrid) -> tuple[KeptPositions, KeptPositions, KeptPositions]:
    """A sample's kept tiles (rows * cols,) as its kept positions on the full, half and latent maps (4x, 2x and
    1x the latent ``grid``)."""
    return tuple(KeptPositions(position_mask(kept[None], grid, scale)[0, 0] > 0) for scale in (4, 2, 1))


def map_rows(x: torch.Tensor) -> torch.Tensor:
    """(frames, C, height, width) map -> (frames, height * width, C) rows of every position."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


GEMM_BELOW = 2048
"""A conv whose output has fewer than this many (frame, position) pairs runs as one matrix product over its
gathered taps; a larger one as a ``taps x 1`` conv. Matrix products carry less fixed cost per call, convs
use the cache better on long outputs with few output channels (measured on a 2-core AMD EPYC, one thread)."""


def gather_taps(rows: torch.Tensor, index: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """(frames, R, C) source rows at ``index`` (A, B) -> (frames * A * B, C); zero where ``keep`` (A, B) is 0."""
    frames, count, channels = rows.shape
    flat = (torch.arange(frames, device=rows.device)[:, None] * count + index.flatten()[None, :]).flatten()
    gathered = rows.reshape(frames * count, channels).index_select(0, flat)
    if keep is not None:
        gathered.view(frames, -1, channels).mul_(keep.reshape(-1, 1).to(rows.dtype))
    return gathered


def conv_rows(conv: nn.Conv2d, rows: torch.Tensor, taps: Taps) -> torch.Tensor:
    """``conv`` (square kernel, any groups) at the output positions of ``taps``, reading ``rows``: (frames, P, out)."""
    return weight_conv_rows(conv.weight, conv.bias, rows, taps, groups=conv.groups)


def weight_conv_rows(
    weight: torch.Tensor, bias: torch.Tensor | None, rows: torch.Tensor, taps: Taps, *, groups: int = 1
) -> torch.Tensor:
    """A conv with ``weight`` (out, in / groups, k, k) and ``bias`` at the output positions of ``taps``."""
    frames, channels, out_channels = rows.shape[0], rows.shape[2], weight.shape[0]
    count, positions = taps.index.shape
    if groups == 1 and frames * positions < GEMM_BELOW:  # (frames * P, taps * C) @ (taps * C, out)
        keep = None if taps.keep is None else taps.keep.t()
        gathered = gather_taps(rows, taps.index.t(), keep).reshape(frames * positions, count * channels)
        out = F.linear(gathered, weight.permute(0, 2, 3, 1).reshape(out_channels, -1), bias)
        return out.reshape(frames, positions, out_channels)
    gathered = gather_taps(rows, taps.index, taps.keep).reshape(frames, count, positions, channels)
    kernel = weight.reshape(out_channels, weight.shape[1], count, 1)  # taps as a (taps x 1) kernel
    out = F.conv2d(gathered.permute(0, 3, 1, 2), kernel, bias, groups=groups)  # (frames, out, 1, P), channels-last
    return out.permute(0, 2, 3, 1).reshape(frames, positions, out_channels)


def linear_rows(conv: nn.Conv2d, rows: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``conv`` on (..., in_channels) rows -> (..., out_channels)."""
    return F.linear(rows, conv.weight.flatten(1), conv.bias)


def norm_rows(norm: nn.GroupNorm, rows: torch.Tensor) -> torch.Tensor:
    """``norm`` of (frames, P, C) rows, statistics per frame over its rows."""
    frames, count, channels = rows.shape
    out = norm(rows.reshape(frames, count, 1, channels).permute(0, 3, 1, 2))  # (frames, C, P, 1), channels-last
    return out.permute(0, 2, 3, 1).reshape(frames, count, channels)


def conv_norm_act_rows(
    stage: nn.Sequential, rows: torch.Tensor, taps: Taps, *, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """A ``conv -> GroupNorm -> activation`` stage at the output positions of ``taps``; with ``columns``,
    ``rows`` hold only those input channels of the conv (the others are zero and skipped)."""
    conv, norm, act = stage
    weight = conv.weight if columns is None else conv.weight[:, columns]
    return act(norm_rows(norm, weight_conv_rows(weight, conv.bias, rows, taps)))


def up_conv_norm_act_rows(
    stage: nn.Sequential, rows: torch.Tensor, source: KeptPositions, positions: KeptPositions, *,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """A decoder stage (2x bilinear upsampling, then conv -> norm -> act) at ``positions`` of the 2x map, from
    ``rows`` at ``source``: the upsampling is computed only where the conv reads (the kept positions'
    neighbourhood under its kernel); ``columns`` as for :func:`conv_norm_act_rows`."""
    stage = stage[1]  # stage[0] is the 2x bilinear upsampling, computed by upsample_rows
    whole = KeptPositions.whole(positions.height, positions.width, device=rows.device)
    on_map = positions.taps(whole, stage[0])  # the map positions each tap reads
    read = torch.zeros(positions.height * positions.width, dtype=torch.bool, device=rows.device)
    read[on_map.index if on_map.keep is None else on_map.index[on_map.keep > 0]] = True
    reads = KeptPositions(read.reshape(positions.height, positions.width))
    taps = Taps(reads.lookup.flatten()[on_map.index].clamp(min=0), on_map.keep)  # the same taps, into ``reads``
    return conv_norm_act_rows(stage, upsample_rows(rows, source, reads), taps, columns=columns)
