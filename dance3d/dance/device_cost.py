"""The device cost table of a dynamic model: what each gated block costs on a device at each keep level.

A gated block runs, per clip, at one level ``(kept frames, kept channels, kept tiles)`` of its
discrete levels; compact execution runs exactly that bucket. The table holds, per block and level,
the measured batch-1 latency (and joules where a meter worked) of the block run the way compact
execution runs it (:mod:`dance3d.dance.device_cost_measure`), the whole model with every unit kept
(``dense_ms``), and the controller (``controller_ms``). A model's cost is predicted additively::

    predicted_ms = overhead_ms + controller_ms + sum over blocks of entry_ms[block][level]

with ``overhead_ms = dense_ms - sum of the all-kept entries`` (stem, head, pooling, framework),
at least 0, as MDP's additive latency model (:mod:`dance3d.mdp.lut`). Between levels the entries
are interpolated multilinearly, so the cost is differentiable in soft kept counts
(:meth:`BlockCostTable.clip_cost`), which is how AAP charges it.

The table records the model (zoo name, head size, each gated block's shape and levels), the clip
shape, the runtime (device, threads, precision, timing) and the machine; a table is refused for a
model whose gated blocks or clip differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from dance3d.dynamic import DynamicModel
from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime
from dance3d.table_files import read_table, write_table

FORMAT = "dance3d-block-cost-table"
FORMAT_VERSION = 1
CostName = Literal["latency", "energy"]
COSTS: tuple[str, ...] = ("macs", "latency", "energy")
UNITS = {"latency": "ms", "energy": "J"}
Level = tuple[int, int, int]


def gate_signature(model: DynamicModel) -> list[dict[str, Any]]:
    """What a table entry depends on, per gated block: its output frames, inner channels, tile grid and levels."""
    return [
        {
            "frames": spec.num_frames,
            "channels": spec.num_channels,
            "tile_grid": list(spec.tile_grid),
            "levels": [list(levels.frames), list(levels.channels), list(levels.tiles)],
        }
        for spec, levels in zip(model.gate_specs, model.levels, strict=True)
    ]


@dataclass
class BlockCosts:
    """One gated block's cost over its level grid: arrays indexed (frames level, channels level, tiles level)."""

    grids: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    latency_ms: np.ndarray
    energy_j: np.ndarray | None = None

    def values(self, cost: CostName) -> np.ndarray:
        values = self.latency_ms if cost == "latency" else self.energy_j
        if values is None:
            raise ConfigError("this cost table holds no joules (no energy meter worked when it was built)")
        return values

    def at(self, level: Level, cost: CostName = "latency") -> float:
        """The entry at an exact level."""
        try:
            index = tuple(grid.index(count) for grid, count in zip(self.grids, level, strict=True))
        except ValueError:
            raise ConfigError(f"level {level} is not one of the block's levels {self.grids}") from None
        return float(self.values(cost)[index])

    def interpolate(self, counts: tuple[torch.Tensor, ...], cost: CostName = "latency") -> torch.Tensor:
        """Multilinear interpolation at per-clip kept counts (B,) per axis, differentiable in the counts.

        At a level the value is its entry; the gradient there is the slope toward the next lower level
        (toward the next higher one at the lowest level).
        """
        values = torch.as_tensor(self.values(cost), dtype=counts[0].dtype, device=counts[0].device)
        corners: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        for grid, count in zip(self.grids, counts, strict=True):
            if len(grid) == 1:
                corners.append([(torch.zeros_like(count, dtype=torch.long), torch.ones_like(count))])
                continue
            points = torch.as_tensor(grid, dtype=count.dtype, device=count.device)
            hi = torch.searchsorted(points, count.detach().contiguous(), side="left").clamp(1, len(grid) - 1)
            lo = hi - 1
            t = (count - points[lo]) / (points[hi] - points[lo])
            corners.append([(lo, 1.0 - t), (hi, t)])
        total = torch.zeros_like(counts[0])
        for fi, fw in corners[0]:
            for ci, cw in corners[1]:
                for ti, tw in corners[2]:
                    total = total + values[fi, ci, ti] * fw * cw * tw
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": list(self.grids[0]),
            "channels": list(self.grids[1]),
            "tiles": list(self.grids[2]),
            "latency_ms": self.latency_ms.tolist(),
            "energy_j": None if self.energy_j is None else self.energy_j.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockCosts:
        energy = data.get("energy_j")
        return cls(
            (tuple(data["frames"]), tuple(data["channels"]), tuple(data["tiles"])),
            np.asarray(data["latency_ms"], dtype=float),
            None if energy is None else np.asarray(energy, dtype=float),
        )


@dataclass
class BlockCostTable:
    """Measured per-block, per-level costs of a dynamic model on one device (see the module docstring)."""

    model: dict[str, Any]  # {"name", "num_classes"} of the backbone
    gates: list[dict[str, Any]]  # gate_signature() of the model measured
    clip_shape: tuple[int, int, int, int]  # C, T, H, W
    runtime: LatencyRuntime
    blocks: list[BlockCosts]
    dense_ms: float  # whole model, every unit kept, no controller
    controller_ms: float  # the controller and its decisions, per clip
    dense_j: float | None = None
    controller_j: float | None = None
    energy_status: str = "not requested"  # "ok", or why there are no joules
    energy_meter: str = "none"
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def has_energy(self) -> bool:
        return self.dense_j is not None and all(b.energy_j is not None for b in self.blocks)

    def _dense_entries(self, cost: CostName) -> float:
        return sum(float(b.values(cost)[-1, -1, -1]) for b in self.blocks)

    def overhead(self, cost: CostName = "latency") -> float:
        """What the block entries miss on the dense model (stem, head, framework), at least 0."""
        dense = self.dense_ms if cost == "latency" else self._dense_j()
        return max(0.0, dense - self._dense_entries(cost))

    def _dense_j(self) -> float:
        if self.dense_j is None:
            raise ConfigError(f"this cost table holds no joules ({self.energy_status})")
        return self.dense_j

    def controller(self, cost: CostName = "latency") -> float:
        if cost == "latency":
            return self.controller_ms
        if self.controller_j is None:
            raise ConfigError(f"this cost table holds no joules ({self.energy_status})")
        return self.controller_j

    def dense_cost(self, cost: CostName = "latency") -> float:
        """Predicted cost with every unit kept and no controller (the dense model's measured cost, or the
        entries' sum where that is larger)."""
        return self.overhead(cost) + self._dense_entries(cost)

    def predict(self, levels: list[Level], *, cost: CostName = "latency", controller: bool = True) -> float:
        """Predicted cost of one clip run at ``levels`` (one per gated block)."""
        if len(levels) != len(self.blocks):
            raise ConfigError(f"{len(levels)} levels for a table of {len(self.blocks)} gated blocks")
        blocks = sum(b.at(level, cost) for b, level in zip(self.blocks, levels, strict=True))
        return self.overhead(cost) + blocks + (self.controller(cost) if controller else 0.0)

    def clip_cost(
        self, counts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *, cost: CostName = "latency",
        controller: bool = True,
    ) -> torch.Tensor:  # fmt: skip
        """Per-clip predicted cost (B,) from each block's kept counts (``DynamicModel.last_keep_counts()``);
        differentiable in the counts (the straight-through surrogate in AAP's train mode)."""
        if len(counts) != len(self.blocks):
            raise ConfigError(f"{len(counts)} gated blocks for a table of {len(self.blocks)}")
        total = sum(b.interpolate(c, cost) for b, c in zip(self.blocks, counts, strict=True))
        return total + self.overhead(cost) + (self.controller(cost) if controller else 0.0)

    def last_forward_cost(self, model: DynamicModel, *, cost: CostName = "latency") -> torch.Tensor:
        """Per-clip predicted cost (B,) of ``model``'s last forward (with its controller when it ran)."""
        ran_controller = model.last_controller_output is not None
        return self.clip_cost(model.last_keep_counts(), cost=cost, controller=ran_controller)

    def check_matches(self, model: DynamicModel, *, name: str | None = None) -> None:
        """Clear error when this table was measured for another model (gated blocks, levels) or clip shape."""
        if tuple(self.clip_shape[1:]) != tuple(model.clip_shape):
            raise ConfigError(
                f"cost table clip shape {'x'.join(map(str, self.clip_shape[1:]))} differs from the model's "
                f"{'x'.join(map(str, model.clip_shape))}; build one for this model with 'dance3d cost-table'"
            )
        if name is not None and self.model.get("name") not in (None, name):
            raise ConfigError(f"cost table was built for model {self.model.get('name')!r}, not {name!r}")
        ours = gate_signature(model)
        if len(ours) != len(self.gates):
            raise ConfigError(f"cost table has {len(self.gates)} gated blocks, the model {len(ours)}: another model")
        for index, (theirs, mine) in enumerate(zip(self.gates, ours, strict=True)):
            if theirs != mine:
                raise ConfigError(
                    f"cost table gated block {index} is {theirs} but the model's is {mine}: the table was built for "
                    "another model (e.g. before or after MDP pruning); build one with 'dance3d cost-table'"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "clip_shape": list(self.clip_shape),
            "batch_size": 1,
            "runtime": asdict(self.runtime),
            "dense_ms": self.dense_ms,
            "controller_ms": self.controller_ms,
            "overhead_ms": self.overhead("latency"),
            "dense_j": self.dense_j,
            "controller_j": self.controller_j,
            "energy_status": self.energy_status,
            "energy_meter": self.energy_meter,
            "gates": self.gates,
            "blocks": [b.to_dict() for b in self.blocks],
            "env": self.env,
        }

    def save(self, path: str | Path) -> Path:
        return write_table(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> BlockCostTable:
        data = read_table(path, fmt=FORMAT, version=FORMAT_VERSION, what="block cost table",
                          command="dance3d cost-table")  # fmt: skip
        try:
            return cls(
                model=data["model"],
                gates=data["gates"],
                clip_shape=tuple(data["clip_shape"]),
                runtime=LatencyRuntime(**data["runtime"]),
                blocks=[BlockCosts.from_dict(b) for b in data["blocks"]],
                dense_ms=float(data["dense_ms"]),
                controller_ms=float(data["controller_ms"]),
                dense_j=data.get("dense_j"),
                controller_j=data.get("controller_j"),
                energy_status=data.get("energy_status", "not requested"),
                energy_meter=data.get("energy_meter", "none"),
                env=data.get("env", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed cost table ({exc!r})") from exc


def load_for(path: str | Path, model: DynamicModel, *, cost: CostName) -> BlockCostTable:
    """The table at ``path``, checked against ``model`` and to hold ``cost``."""
    table = BlockCostTable.load(path)
    table.check_matches(model)
    if cost == "energy" and not table.has_energy:
        raise ConfigError(
            f"{path} holds no joules ({table.energy_status}); use the latency cost or rebuild it with a meter"
        )
    return table


@torch.no_grad()
def mean_table_cost(
    model: DynamicModel, clips: torch.Tensor, table: BlockCostTable, *, cost: CostName = "latency",
    batch_size: int = 32,
) -> float:  # fmt: skip
    """Mean per-clip table cost of ``model`` (as it is set now, controller included) over ``clips`` (N, C, T, H, W)."""
    total = 0.0
    for start in range(0, len(clips), batch_size):
        model(clips[start : start + batch_size])
        total += float(table.last_forward_cost(model, cost=cost).sum())
    return total / len(clips)
