"""Static baselines for co-pruning at matched MACs: a uniformly narrowed backbone, fixed and random tile sets.

* **Uniform channel pruning** (:func:`prune_simvp`): every width of a trained SimVP scaled by one
  ratio, keeping in each layer the output channels whose filters have the largest L1 norm (and the
  matching input slices downstream); the narrow model is then fine-tuned like the co-pruned ones.
  :func:`match_width` picks the ratio whose counted MACs are closest to a target.
  For the Transformer (:func:`prune_stformer`): every attention's per-head q/k and v widths and every
  MLP's hidden width cut together, keeping the largest-norm ones; :func:`match_stformer_width`.
  For the ConvLSTM (:func:`prune_convlstm`): every cell's hidden width scaled by one ratio, keeping
  the channels whose 4 gate rows have the largest L1 norm; :func:`match_convlstm_width`.
* **Static tile sets** (:class:`StaticTilesSimVP`, :class:`StaticTilesSTFormer`,
  :class:`StaticTilesConvLSTM`): the dense backbone
  computes the same number of tiles for every sample, either a fixed centred crop (``crop``) or a
  fresh random choice per sample (``drop``); skipped tiles forecast persistence, as in co-pruning.
  No generator, no channel mask. :func:`tile_budget` picks the tile count whose MACs are closest to a target.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.config import CopruneConfig
from dance3d.copruning.convlstm import CoprunedConvLSTM
from dance3d.copruning.model import CoprunedSimVP
from dance3d.copruning.tiles import position_mask
from dance3d.copruning.transformer import CoprunedSTFormer
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import ConvLSTMForecaster, SimVP, SpatioTemporalTransformer
from profiling import count_macs

STATIC_LAYOUTS = ("crop", "drop")


def _top_l1(conv: nn.Conv2d, keep: int, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output filters of ``conv`` with the largest L1 norm."""
    norms = conv.weight.detach().abs().flatten(1).sum(dim=1) if rows is None else rows
    return norms.topk(keep).indices.sort().values


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor | None) -> None:
    weight = src.weight.detach()[out_idx]
    if in_idx is not None:
        weight = weight[:, in_idx]
    dst.weight.data.copy_(weight)
    if src.bias is not None:
        dst.bias.data.copy_(src.bias.detach()[out_idx])


def _copy_norm(dst: nn.GroupNorm, src: nn.GroupNorm, idx: torch.Tensor) -> None:
    if src.affine:
        dst.weight.data.copy_(src.weight.detach()[idx])
        dst.bias.data.copy_(src.bias.detach()[idx])


def _framewise(idx: torch.Tensor, frames: int, width: int) -> torch.Tensor:
    """Channel indices ``idx`` of each of ``frames`` frames stacked as channels of ``width`` each."""
    return torch.cat([t * width + idx for t in range(frames)])


def prune_simvp(dense: SimVP, *, hidden_spatial: int, hidden_temporal: int) -> SimVP:
    """A narrower SimVP initialised from ``dense`` by keeping its largest-L1 channels in every layer."""
    hs, ht = dense.stem[0].out_channels * 2, dense.translator[0].out_channels
    if hidden_spatial % 2 or not 2 <= hidden_spatial <= hs or not 1 <= hidden_temporal <= ht:
        raise ConfigError(
            f"pruned widths must be an even hidden_spatial in [2, {hs}] and hidden_temporal in [1, {ht}], "
            f"got {hidden_spatial}, {hidden_temporal}"
        )
    t_in, t_out = dense.t_in, dense.t_out
    blocks = len(dense.translator) - 2
    narrow = SimVP(
        dense.channels, t_in=t_in, t_out=t_out, hidden_spatial=hidden_spatial, hidden_temporal=hidden_temporal,
        translator_blocks=blocks,
    )  # fmt: skip
    half = hidden_spatial // 2
    stem = _top_l1(dense.stem[0], half)
    enc0 = _top_l1(dense.encoder[0][0], hidden_spatial)
    enc1 = _top_l1(dense.encoder[1][0], hidden_spatial)
    width = _top_l1(dense.translator[0], hidden_temporal)
    out_rows = dense.translator[-1].weight.detach().abs().flatten(1).sum(dim=1).reshape(t_out, hs).sum(dim=0)
    latent_out = _top_l1(dense.translator[-1], hidden_spatial, rows=out_rows)
    dec0 = _top_l1(dense.decoder[0][1][0], hidden_spatial)
    dec1 = _top_l1(dense.decoder[1][1][0], half)

    def stage(dst: nn.Sequential, src: nn.Sequential, out_idx: torch.Tensor, in_idx: torch.Tensor | None) -> None:
        _copy_conv(dst[0], src[0], out_idx, in_idx)
        _copy_norm(dst[1], src[1], out_idx)

    stage(narrow.stem, dense.stem, stem, None)
    stage(narrow.encoder[0], dense.encoder[0], enc0, stem)
    stage(narrow.encoder[1], dense.encoder[1], enc1, enc0)
    _copy_conv(narrow.translator[0], dense.translator[0], width, _framewise(enc1, t_in, hs))
    for dst, src in zip(narrow.translator[1:-1], dense.translator[1:-1], strict=True):
        hidden = _top_l1(src.mlp[0], dst.mlp[0].out_channels)
        _copy_conv(dst.spatial, src.spatial, width, None)
        _copy_norm(dst.norm, src.norm, width)
        _copy_conv(dst.mlp[0], src.mlp[0], hidden, width)
        _copy_conv(dst.mlp[2], src.mlp[2], width, hidden)
    _copy_conv(narrow.translator[-1], dense.translator[-1], _framewise(latent_out, t_out, hs), width)
    stage(narrow.decoder[0][1], dense.decoder[0][1], dec0, latent_out)
    stage(narrow.decoder[1][1], dense.decoder[1][1], dec1, dec0)
    head_in = torch.cat([dec1, hs // 2 + stem])  # decoded features, then the last frame's skip
    _copy_conv(narrow.head, dense.head, torch.arange(dense.channels), head_in)
    return narrow


@dataclass(frozen=True)
class WidthChoice:
    """Widths of a uniformly pruned SimVP and its counted MACs per sample."""

    hidden_spatial: int
    hidden_temporal: int
    macs: int


def _narrow_macs(dense: SimVP, sample: torch.Tensor, spatial: int, temporal: int) -> int:
    narrow = SimVP(dense.channels, t_in=dense.t_in, t_out=dense.t_out, hidden_spatial=spatial,
                   hidden_temporal=temporal, translator_blocks=len(dense.translator) - 2)  # fmt: skip
    return int(count_macs(narrow, sample[:1]).macs_per_clip)


def match_width(dense: SimVP, sample: torch.Tensor, target_macs: float, *, tolerance: float = 0.02) -> WidthChoice:
    """Widths of the pruned SimVP whose counted MACs on ``sample`` match ``target_macs``, as uniform as possible.

    For each even spatial width the temporal width whose MACs are closest to the target is found
    by bisection (MACs grow with it); among the pairs within ``tolerance`` x the dense MACs of the
    target, the one whose two width ratios differ least wins (else the pair closest in MACs).
    """
    hs, ht = dense.stem[0].out_channels * 2, dense.translator[0].out_channels
    dense_macs = int(count_macs(dense, sample[:1]).macs_per_clip)
    choices = []
    for spatial in range(2, hs + 1, 2):
        low, high = 1, ht
        while low < high:  # smallest temporal width with MACs >= target
            mid = (low + high) // 2
            if _narrow_macs(dense, sample, spatial, mid) >= target_macs:
                high = mid
            else:
                low = mid + 1
        for temporal in {max(1, low - 1), low}:
            choices.append(WidthChoice(spatial, temporal, _narrow_macs(dense, sample, spatial, temporal)))
    close = [c for c in choices if abs(c.macs - target_macs) <= tolerance * dense_macs]
    if not close:
        return min(choices, key=lambda c: abs(c.macs - target_macs))
    return min(close, key=lambda c: (abs(c.hidden_spatial / hs - c.hidden_temporal / ht), abs(c.macs - target_macs)))


class NarrowSelfAttention(nn.Module):
    """Multi-head self-attention whose heads have ``inner`` q/k and v dims (fewer than ``dim / heads``),
    keeping the dense model's ``1 / sqrt(dim / heads)`` score scale."""

    def __init__(self, dim: int, heads: int, inner: int, *, scale: float) -> None:
        super().__init__()
        self.heads, self.inner, self.scale = heads, inner, scale
        self.qkv = nn.Linear(dim, 3 * heads * inner)
        self.proj = nn.Linear(heads * inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.heads, self.inner).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, length, self.heads * self.inner))


def _narrow_attention(src: nn.Module, inner: int) -> NarrowSelfAttention:
    """``src`` (a dense ``SelfAttention``) with each head's ``inner`` largest-norm q/k dims (by |q row| |k row|)
    and v dims (by |v row| |proj column|)."""
    heads = src.heads
    dim = src.proj.out_features
    head_dim = dim // heads
    weight = src.qkv.weight.detach().reshape(3, heads, head_dim, dim)
    bias = src.qkv.bias.detach().reshape(3, heads, head_dim)
    proj = src.proj.weight.detach().reshape(dim, heads, head_dim)
    qk_norm = weight[0].norm(dim=-1) * weight[1].norm(dim=-1)  # (heads, head_dim)
    v_norm = weight[2].norm(dim=-1) * proj.norm(dim=0)
    qk_idx = qk_norm.topk(inner, dim=1).indices.sort(dim=1).values  # (heads, inner)
    v_idx = v_norm.topk(inner, dim=1).indices.sort(dim=1).values
    narrow = NarrowSelfAttention(dim, heads, inner, scale=head_dim**-0.5)
    rows = torch.arange(heads)[:, None]
    picked_w = torch.stack([weight[0][rows, qk_idx], weight[1][rows, qk_idx], weight[2][rows, v_idx]])
    picked_b = torch.stack([bias[0][rows, qk_idx], bias[1][rows, qk_idx], bias[2][rows, v_idx]])
    narrow.qkv.weight.data.copy_(picked_w.reshape(-1, dim))
    narrow.qkv.bias.data.copy_(picked_b.reshape(-1))
    narrow.proj.weight.data.copy_(proj[:, rows, v_idx].reshape(dim, -1))
    narrow.proj.bias.data.copy_(src.proj.bias.detach())
    return narrow


def _narrow_mlp(src: nn.Sequential, hidden: int) -> nn.Sequential:
    """``src`` (Linear, GELU, Linear) with its ``hidden`` largest-norm hidden channels (|fc1 row| |fc2 column|)."""
    fc1, act, fc2 = src
    norms = fc1.weight.detach().norm(dim=1) * fc2.weight.detach().norm(dim=0)
    idx = norms.topk(hidden).indices.sort().values
    narrow = nn.Sequential(nn.Linear(fc1.in_features, hidden), copy.deepcopy(act), nn.Linear(hidden, fc2.out_features))
    narrow[0].weight.data.copy_(fc1.weight.detach()[idx])
    narrow[0].bias.data.copy_(fc1.bias.detach()[idx])
    narrow[2].weight.data.copy_(fc2.weight.detach()[:, idx])
    narrow[2].bias.data.copy_(fc2.bias.detach())
    return narrow


def stformer_widths(dense: SpatioTemporalTransformer) -> tuple[int, int]:
    """(per-head q/k/v width, MLP hidden width) of ``dense``."""
    block = dense.blocks[0]
    return dense.dim // block.space.heads, block.mlp[0].out_features


def prune_stformer(dense: SpatioTemporalTransformer, *, head_dim: int, hidden: int) -> SpatioTemporalTransformer:
    """A narrower Transformer from ``dense``: every attention (space and time) keeps ``head_dim`` q/k and v dims
    per head, every MLP ``hidden`` channels, the largest-norm ones; the token width ``dim`` is unchanged."""
    full_head, full_hidden = stformer_widths(dense)
    if not 1 <= head_dim <= full_head or not 1 <= hidden <= full_hidden:
        raise ConfigError(
            f"pruned widths must be head_dim in [1, {full_head}] and hidden in [1, {full_hidden}], "
            f"got {head_dim}, {hidden}"
        )
    narrow = copy.deepcopy(dense)
    for dst, src in zip(narrow.blocks, dense.blocks, strict=True):
        dst.space = _narrow_attention(src.space, head_dim)
        dst.time = _narrow_attention(src.time, head_dim)
        dst.mlp = _narrow_mlp(src.mlp, hidden)
    return narrow


@dataclass(frozen=True)
class TokenWidthChoice:
    """Widths of a uniformly pruned Transformer and its counted MACs per sample."""

    head_dim: int
    hidden: int
    macs: int


def match_stformer_width(
    dense: SpatioTemporalTransformer, sample: torch.Tensor, target_macs: float, *, tolerance: float = 0.02
) -> TokenWidthChoice:
    """Widths of the pruned Transformer whose counted MACs on ``sample`` match ``target_macs``, as uniform as
    possible: for each head width the MLP width closest to the target (bisection), then among the pairs within
    ``tolerance`` x the dense MACs of the target the one whose two width ratios differ least."""
    full_head, full_hidden = stformer_widths(dense)
    dense_macs = int(count_macs(dense, sample[:1]).macs_per_clip)

    def macs(head_dim: int, hidden: int) -> int:
        return int(count_macs(prune_stformer(dense, head_dim=head_dim, hidden=hidden), sample[:1]).macs_per_clip)

    choices = []
    for head_dim in range(1, full_head + 1):
        low, high = 1, full_hidden
        while low < high:  # smallest MLP width with MACs >= target
            mid = (low + high) // 2
            if macs(head_dim, mid) >= target_macs:
                high = mid
            else:
                low = mid + 1
        for hidden in {max(1, low - 1), low}:
            choices.append(TokenWidthChoice(head_dim, hidden, macs(head_dim, hidden)))
    close = [c for c in choices if abs(c.macs - target_macs) <= tolerance * dense_macs]
    if not close:
        return min(choices, key=lambda c: abs(c.macs - target_macs))
    return min(close, key=lambda c: (abs(c.head_dim / full_head - c.hidden / full_hidden), abs(c.macs - target_macs)))


def convlstm_widths(dense: ConvLSTMForecaster) -> tuple[int, ...]:
    """Each cell's hidden width of ``dense``."""
    return tuple(cell.hidden for cell in dense.cells)


def prune_convlstm(dense: ConvLSTMForecaster, *, hidden: tuple[int, ...]) -> ConvLSTMForecaster:
    """A ConvLSTM from ``dense`` whose cells keep ``hidden`` channels each: those whose 4 gate rows have the
    largest L1 norm, with their recurrent columns and their columns in the next cell or the decoder's first conv;
    the encoder, the rest of the decoder and the head are unchanged."""
    full = convlstm_widths(dense)
    if len(hidden) != len(full) or not all(1 <= n <= w for n, w in zip(hidden, full, strict=True)):
        raise ConfigError(f"pruned widths must be one per cell, each in [1, the cell's width {list(full)}], "
                          f"got {list(hidden)}")  # fmt: skip
    narrow = copy.deepcopy(dense)
    inputs = torch.arange(dense.cells[0].gates.in_channels - full[0])  # the first cell reads every encoder channel
    for dst, src, width in zip(narrow.cells, dense.cells, hidden, strict=True):
        norms = src.gates.weight.detach().abs().flatten(1).sum(dim=1).reshape(4, src.hidden).sum(dim=0)
        kept = norms.topk(width).indices.sort().values
        rows = torch.cat([part * src.hidden + kept for part in range(4)])
        dst.gates = nn.Conv2d(len(inputs) + width, 4 * width, src.gates.kernel_size, padding=src.gates.padding)
        _copy_conv(dst.gates, src.gates, rows, torch.cat([inputs, src.gates.in_channels - src.hidden + kept]))
        dst.hidden, inputs = width, kept
    dec = dense.decoder[0][1][0]
    narrow.decoder[0][1][0] = nn.Conv2d(len(inputs), dec.out_channels, dec.kernel_size, padding=dec.padding)
    _copy_conv(narrow.decoder[0][1][0], dec, torch.arange(dec.out_channels), inputs)
    return narrow


@dataclass(frozen=True)
class LSTMWidthChoice:
    """Hidden widths of a uniformly pruned ConvLSTM and its counted MACs per sample."""

    hidden: tuple[int, ...]
    macs: int


def match_convlstm_width(dense: ConvLSTMForecaster, sample: torch.Tensor, target_macs: float) -> LSTMWidthChoice:
    """The cells' hidden widths (one ratio for all, rounded, at least 1) whose counted MACs on ``sample`` are
    closest to ``target_macs``; the ratio runs over the first cell's widths."""
    full = convlstm_widths(dense)
    choices = []
    for first in range(1, full[0] + 1):
        hidden = tuple(max(1, round(first / full[0] * width)) for width in full)
        macs = int(count_macs(prune_convlstm(dense, hidden=hidden), sample[:1]).macs_per_clip)
        choices.append(LSTMWidthChoice(hidden, macs))
    return min(choices, key=lambda c: abs(c.macs - target_macs))


@dataclass(frozen=True)
class UniformBaseline:
    """A uniformly narrowed copy of a dense forecaster, its widths and its counted MACs per sample."""

    model: nn.Module
    widths: dict[str, int]
    macs: int


def uniform_width_baseline(dense: nn.Module, sample: torch.Tensor, target_macs: float) -> UniformBaseline:
    """The uniform-width baseline of ``dense`` (SimVP, Transformer or ConvLSTM) at ``target_macs`` counted MACs."""
    if isinstance(dense, ConvLSTMForecaster):
        lstm = match_convlstm_width(dense, sample, target_macs)
        widths = {f"hidden_{index}": width for index, width in enumerate(lstm.hidden)}
        return UniformBaseline(prune_convlstm(dense, hidden=lstm.hidden), widths, lstm.macs)
    if isinstance(dense, SpatioTemporalTransformer):
        choice = match_stformer_width(dense, sample, target_macs)
        narrow = prune_stformer(dense, head_dim=choice.head_dim, hidden=choice.hidden)
        return UniformBaseline(narrow, {"head_dim": choice.head_dim, "hidden": choice.hidden}, choice.macs)
    width = match_width(dense, sample, target_macs)
    narrow = prune_simvp(dense, hidden_spatial=width.hidden_spatial, hidden_temporal=width.hidden_temporal)
    widths = {"hidden_spatial": width.hidden_spatial, "hidden_temporal": width.hidden_temporal}
    return UniformBaseline(narrow, widths, width.macs)


def finetune_static(
    model: nn.Module, train_set: Dataset, *, epochs: int, batch_size: int, lr: float, seed: int
) -> nn.Module:
    """Fine-tune a static baseline on forecast MSE (AdamW, no weight decay; epoch ``e`` shuffled with seed
    ``seed + e``), the budget a co-pruned model gets; returns it in eval mode."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed + epoch)
        for batch in DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator):
            loss = F.mse_loss(model(batch["inputs"]), batch["targets"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


class NoScores(nn.Module):
    """Stands in for the mask generator of a static baseline: a constant map, no MACs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = math.ceil(x.shape[-2] / 4), math.ceil(x.shape[-1] / 4)
        return x.new_ones(x.shape[0], height, width)


def centre_order(grid: TileGrid) -> torch.Tensor:
    """Tile indices sorted by the distance of their centre from the map's centre (ties by index)."""
    rows = torch.arange(grid.rows).repeat_interleave(grid.cols).double()
    cols = torch.arange(grid.cols).repeat(grid.rows).double()
    distance = ((rows + 0.5) * grid.tile_h - grid.height / 2) ** 2 + ((cols + 0.5) * grid.tile_w - grid.width / 2) ** 2
    return torch.tensor(sorted(range(grid.rows * grid.cols), key=lambda i: (float(distance[i]), i)))


class StaticTiles(CoprunedForecaster):
    """The dense backbone on ``tiles`` tiles per sample, the same for every input (``crop``: the centred
    ones) or drawn at random per sample (``drop``, from a generator seeded by ``seed``); no channel mask.
    Mixed into a co-pruned wrapper (:class:`StaticTilesSimVP`, :class:`StaticTilesSTFormer`)."""

    def _static(self, *, tiles: int, layout: str, seed: int) -> None:
        self.generator = NoScores()
        self.tiles, self.layout, self.seed = tiles, layout, seed
        self._random = torch.Generator().manual_seed(seed)

    def reseed(self) -> StaticTiles:
        """Restart the random tile draws (so two evaluations see the same tiles)."""
        self._random.manual_seed(self.seed)
        return self

    def decide_tiles(self, scores: torch.Tensor, grid: TileGrid, *, soft: bool) -> torch.Tensor:
        count = grid.rows * grid.cols
        if self.tiles > count:
            raise ConfigError(f"{self.tiles} tiles asked of a grid of {count}")
        mask = scores.new_zeros(scores.shape[0], count)
        if self.layout == "crop":
            mask[:, centre_order(grid)[: self.tiles]] = 1.0
            return mask
        for row in mask:
            row[torch.randperm(count, generator=self._random)[: self.tiles]] = 1.0
        return mask


def _check_static(tiles: int, layout: str) -> None:
    if layout not in STATIC_LAYOUTS:
        raise ConfigError(f"static tile layout must be one of {', '.join(STATIC_LAYOUTS)}, got {layout!r}")
    if tiles < 1:
        raise ConfigError(f"a static baseline needs at least one tile, got {tiles}")


class StaticTilesSimVP(StaticTiles, CoprunedSimVP):
    """:class:`StaticTiles` on a SimVP."""

    def __init__(self, backbone: SimVP, *, tiles: int, layout: str, tile_size: int = 8, seed: int = 0) -> None:
        _check_static(tiles, layout)
        CoprunedSimVP.__init__(self, backbone, CopruneConfig(backbone="simvp-tiny", tile_size=tile_size,
                                                              model_mask=False))  # fmt: skip
        self._static(tiles=tiles, layout=layout, seed=seed)


class StaticTilesSTFormer(StaticTiles, CoprunedSTFormer):
    """:class:`StaticTiles` on the spatio-temporal Transformer (dropped tiles' tokens do not run)."""

    def __init__(
        self, backbone: SpatioTemporalTransformer, *, tiles: int, layout: str, tile_size: int = 8, seed: int = 0
    ) -> None:
        _check_static(tiles, layout)
        CoprunedSTFormer.__init__(self, backbone, CopruneConfig(backbone="stformer-tiny", tile_size=tile_size,
                                                                model_mask=False))  # fmt: skip
        self._static(tiles=tiles, layout=layout, seed=seed)


class StaticTilesConvLSTM(StaticTiles, CoprunedConvLSTM):
    """:class:`StaticTiles` on the ConvLSTM (skipped tiles' cells never update)."""

    def __init__(
        self, backbone: ConvLSTMForecaster, *, tiles: int, layout: str, tile_size: int = 8, seed: int = 0
    ) -> None:
        _check_static(tiles, layout)
        CoprunedConvLSTM.__init__(self, backbone, CopruneConfig(backbone="convlstm-tiny", tile_size=tile_size,
                                                                model_mask=False))  # fmt: skip
        self._static(tiles=tiles, layout=layout, seed=seed)


def static_position_fraction(grid: TileGrid, tiles: int) -> float:
    """Share of the latent map the ``tiles`` centred tiles cover (cut edge tiles count their inside part)."""
    mask = torch.zeros(1, grid.rows * grid.cols)
    mask[0, centre_order(grid)[:tiles]] = 1.0
    return float(position_mask(mask, grid).mean())


def tile_budget(grid: TileGrid, target_fraction: float, *, cost: Callable[[float], float] | None = None) -> int:
    """The tile count (at least 1) whose MAC fraction is closest to ``target_fraction``; ``cost`` maps a kept
    share of positions to the MAC fraction (default: equal to it, as for SimVP)."""
    cost = cost or (lambda fraction: fraction)
    counts = range(1, grid.rows * grid.cols + 1)
    return min(counts, key=lambda k: (abs(cost(static_position_fraction(grid, k)) - target_fraction), k))


def static_tiles_model(dense: nn.Module, *, target_fraction: float, layout: str, sample: torch.Tensor,
                       tile_size: int = 8, seed: int = 0) -> StaticTiles:  # fmt: skip
    """A :class:`StaticTiles` model on a copy of ``dense`` (SimVP, Transformer or ConvLSTM) with the tile count
    matched to ``target_fraction`` (for the Transformer through its token MAC count, attention's quadratic term
    included; for the ConvLSTM through its MAC count)."""
    if isinstance(dense, (SpatioTemporalTransformer, ConvLSTMForecaster)):
        wrapper = StaticTilesSTFormer if isinstance(dense, SpatioTemporalTransformer) else StaticTilesConvLSTM
        probe: StaticTiles = wrapper(copy.deepcopy(dense), tiles=1, layout=layout, tile_size=tile_size, seed=seed)
        cost = lambda fraction: probe.mac_fraction_at(sample[:1], fraction)  # noqa: E731
    else:
        probe = StaticTilesSimVP(copy.deepcopy(dense), tiles=1, layout=layout, tile_size=tile_size, seed=seed)
        cost = None
    grid = probe.grid_for(*probe.generator(sample[:1]).shape[-2:])
    probe.tiles = tile_budget(grid, target_fraction, cost=cost)
    return probe


__all__ = [
    "STATIC_LAYOUTS",
    "LSTMWidthChoice",
    "StaticTiles",
    "StaticTilesConvLSTM",
    "StaticTilesSTFormer",
    "StaticTilesSimVP",
    "TokenWidthChoice",
    "UniformBaseline",
    "WidthChoice",
    "finetune_static",
    "match_convlstm_width",
    "match_stformer_width",
    "match_width",
    "prune_convlstm",
    "prune_simvp",
    "prune_stformer",
    "static_tiles_model",
    "tile_budget",
    "uniform_width_baseline",
]
