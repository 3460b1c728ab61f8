"""Dense fallback of a co-pruned CNN's or ConvLSTM's compact execution: the kept-tile count above which tiles
do not pay.

Compact execution runs every conv on the taps its kept positions read; on a CPU a conv over gathered
taps costs more per MAC than one conv over the whole map, and each sample pays the fixed cost of
many small operations, so above some number of kept tiles computing the whole map (skipped tiles
masked: the simulate numerics, for that sample alone) is faster. :func:`calibrate_fallback` times
both paths on the device, interleaved, at a ladder of kept-tile counts for one input size, and
records a :class:`FallbackCalibration`; a model holding one (``model.fallback``) runs a sample on
the whole map when its kept-tile count is at or above the measured break-even. Both paths give the
same forecast (up to float rounding).

A :class:`WholeMapFallback` model supplies both paths. SimVP's whole-map path runs every channel
(it is charged the dense MACs); the ConvLSTM's slices each cell to the sample's kept hidden
channels and so also runs a sample that keeps every tile, with or without a table.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dance3d.copruning.decisions import Decisions, run_per_sample
from dance3d.dynamic.compact_calibration import device_key
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.table_files import read_table, write_table
from profiling.latency import measure_interleaved

FORMAT, FORMAT_VERSION = "dance3d-compact-fallback", 1


@dataclass
class FallbackCalibration:
    """Median ms per sample of the tiled and the whole-map path at each measured kept-tile count."""

    device: str
    input_hw: tuple[int, int]  # the (height, width) of the inputs it was measured on
    tiles: int  # tiles in the grid at that size
    tiled_ms: dict[int, float] = field(default_factory=dict)
    whole_ms: dict[int, float] = field(default_factory=dict)

    @property
    def break_even_tiles(self) -> int | None:
        """The smallest measured count from which the whole map is faster at every larger measured count
        (None: the tiled path is faster at the largest count, so never fall back)."""
        counts = sorted(self.tiled_ms)
        break_even = None
        for count in reversed(counts):
            if self.whole_ms[count] > self.tiled_ms[count]:
                break
            break_even = count
        return break_even

    def runs_whole_map(self, kept_tiles: int, *, height: int, width: int) -> bool:
        """Whether a sample of ``height x width`` with ``kept_tiles`` kept runs on the whole map."""
        if (height, width) != tuple(self.input_hw):
            raise ConfigError(
                f"the compact fallback calibration was measured on {self.input_hw[0]}x{self.input_hw[1]} inputs, "
                f"not {height}x{width}: calibrate again for this size"
            )
        break_even = self.break_even_tiles
        return break_even is not None and kept_tiles >= break_even

    def save(self, path: str | Path) -> Path:
        return write_table({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}, path)

    @classmethod
    def load(cls, path: str | Path) -> FallbackCalibration:
        data = read_table(path, fmt=FORMAT, version=FORMAT_VERSION, what="compact fallback table",
                          command="dance3d fallback-table")  # fmt: skip
        try:
            return cls(
                device=str(data["device"]),
                input_hw=(int(data["input_hw"][0]), int(data["input_hw"][1])),
                tiles=int(data["tiles"]),
                tiled_ms={int(k): float(v) for k, v in data["tiled_ms"].items()},
                whole_ms={int(k): float(v) for k, v in data["whole_ms"].items()},
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise ConfigError(f"{path}: a broken compact fallback table ({error!r})") from error


class WholeMapFallback:
    """A co-pruned forecaster whose compact execution has a tiled and a whole-map path per sample.

    ``fallback``: the measured break-even (None: tiles only); ``whole_map_when_all_kept``: a sample
    that keeps every tile runs on the whole map even without a table (set where the whole-map path
    computes no more than the tiled one would).
    """

    fallback: FallbackCalibration | None = None
    whole_map_when_all_kept: bool = False

    def tiled_sample(
        self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, kept: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
        """One sample (1, t_in, C, H, W) on its kept tiles ``kept`` (rows * cols,), ``scores`` (h, w) its ``S``:
        (forecast, kept channels per block or None)."""
        raise NotImplementedError

    def whole_map_sample(
        self, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
        """The same sample on the whole map, ``scores`` (1, h, w), ``tiles`` (1, rows * cols)."""
        raise NotImplementedError

    def runs_whole_map(self, kept_tiles: int, tiles: int, *, height: int, width: int) -> bool:
        """Whether a ``height x width`` sample keeping ``kept_tiles`` of ``tiles`` runs on the whole map."""
        if self.whole_map_when_all_kept and kept_tiles == tiles:
            return True
        return self.fallback is not None and self.fallback.runs_whole_map(kept_tiles, height=height, width=width)


def compact_with_fallback(
    model: WholeMapFallback, x: torch.Tensor, scores: torch.Tensor, grid: TileGrid, tiles: torch.Tensor,
    hidden: list[int] | None,
) -> tuple[torch.Tensor, Decisions]:  # fmt: skip
    """A batch in compact execution, each sample on its tiles or, where ``model`` says so, on the whole map;
    ``tiles`` (B, rows * cols) the kept tiles, ``hidden`` each gated block's width (None: no model mask)."""
    height, width = x.shape[-2:]
    counts = tiles.sum(dim=1).tolist()
    whole = [model.runs_whole_map(int(c), tiles.shape[1], height=height, width=width) for c in counts]

    def run(b: int) -> tuple[torch.Tensor, list[torch.Tensor | None] | None]:
        if whole[b]:
            return model.whole_map_sample(x[b : b + 1], scores[b : b + 1], grid, tiles[b : b + 1])
        return model.tiled_sample(x[b : b + 1], scores[b], grid, tiles[b])

    out, decisions = run_per_sample(x, grid, tiles, hidden, run)
    decisions.whole_map = torch.tensor(whole, device=x.device)
    return out, decisions


def with_fallback(model: torch.nn.Module, table: FallbackCalibration) -> torch.nn.Module:
    """A copy of the co-pruned ``model`` (a :class:`WholeMapFallback`) that runs compact execution with
    ``table``'s dense fallback."""
    copy = deepcopy(model)
    copy.fallback = table
    return copy


def kept_tile_ladder(tiles: int, *, levels: int) -> list[int]:
    """``levels`` kept-tile counts spread evenly over 1..tiles (distinct, ascending, the last = all)."""
    return sorted({max(1, round(tiles * (i + 1) / levels)) for i in range(levels)})


def calibrate_fallback(
    model: torch.nn.Module, x: torch.Tensor, *, levels: int = 8, warmup: int = 2, repeats: int = 7, seed: int = 0
) -> FallbackCalibration:
    """Time the tiled and the whole-map path of a co-pruned :class:`WholeMapFallback` model on one sample ``x``
    (1, t_in, C, H, W), at ``levels`` kept-tile counts (random tiles, seeded), interleaved; the model is left
    unchanged."""
    if not isinstance(model, WholeMapFallback):
        raise ConfigError(
            f"a compact fallback is measured on a co-pruned SimVP or ConvLSTM, not {type(model).__name__}: "
            "the Transformer's compact execution drops tokens and has no whole-map path"
        )
    if model.training:
        raise ConfigError("calibrate a co-pruned model in eval mode")
    if x.ndim != 5 or x.shape[0] != 1:
        raise ConfigError(f"calibrate on one sample shaped (1, t_in, C, H, W), got {tuple(x.shape)}")
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        scores = model.generator(x)
    grid = model.grid_for(*scores.shape[-2:])
    count = grid.rows * grid.cols
    calibration = FallbackCalibration(device=device_key(x.device), input_hw=tuple(x.shape[-2:]), tiles=count)
    for kept in kept_tile_ladder(count, levels=levels):
        tiles = torch.zeros(1, count, device=x.device)
        tiles[0, torch.randperm(count, generator=generator)[:kept]] = 1.0
        calls = {
            "tiled": lambda t=tiles: model.tiled_sample(x, scores[0], grid, t[0]),
            "whole": lambda t=tiles: model.whole_map_sample(x, scores, grid, t),
        }
        times = measure_interleaved(calls, warmup=warmup, repeats=repeats, device=x.device)
        calibration.tiled_ms[kept] = times["tiled"].median_ms
        calibration.whole_ms[kept] = times["whole"].median_ms
    return calibration
