"""The latency lookup table: per-layer latency over a grid of widths, interpolation, JSON I/O, prediction.

A layer's latency depends on the widths of the (at most two) prunable groups it reads and writes;
``axes`` names them and ``latency_ms`` holds one value per grid point. Widths between grid points
are interpolated (linear in one axis, bilinear in two); a width of 0 (a removed block) costs 0; a
width outside ``[smallest, largest]`` grid point is an error, never an extrapolation.

End to end, every latency model is linear in the sum of the layer entries:
``predicted_ms = a x entries_ms + b_ms`` (a :class:`LatencyPredictor`). The candidates are

* ``entries``: ``a = 1, b = 0``, the layer entries alone;
* ``additive``: ``a = 1``, ``b`` = the measured dense latency minus the sum of its entries (the
  adds, pooling, head and framework overhead), at least 0;
* ``overhead``: ``a = 1``, ``b >= 0`` the median gap (measured minus entries) of the measured models;
* ``calibrated``: ``a`` and ``b`` fitted (non-negative least squares) on measured pruned models,
  which can also absorb layers running slower inside the model than alone (cold caches).

``calibration.calibrate_table`` measures pruned models, scores each candidate by its held-out
(leave-one-out) error and stores the best one as ``predictor``; :meth:`LatencyTable.predict_ms`
and the MILP's budget constraint use it. Tables without a ``predictor`` (no calibration, or JSON
written before the selection existed) predict with ``scale`` and ``overhead_ms`` as before.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dance3d.errors import ConfigError
from dance3d.mdp.graph import Structure
from dance3d.mdp.plan import PrunePlan
from dance3d.table_files import read_table, write_table

FORMAT = "dance3d-latency-table"
FORMAT_VERSION = 2  # 2: "predictor" and "predictor_candidates" (version 1 files still load)
PREDICTORS = ("entries", "additive", "overhead", "calibrated")  # simplest first: ties go to the earlier one


def error_pct(predicted_ms: float, measured_ms: float) -> float:
    """Prediction error in % of the measured latency (negative: the model runs slower than predicted)."""
    return 100.0 * (predicted_ms - measured_ms) / measured_ms


@dataclass(frozen=True)
class LatencyRuntime:
    """Where and how layers are timed: the deployment device, threads and precision.

    Every latency (a table entry, a whole model) is timed in ``rounds`` rounds spread over the
    measurement, each a median of ``repeats`` calls after ``warmup``; the lowest round median is
    kept, since noise from other work on a shared machine only ever adds time.
    """

    device: str = "cpu"
    threads: int = 0  # 0: torch's default
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    warmup: int = 5
    repeats: int = 20  # per round
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.rounds < 1 or self.warmup < 0:
            raise ConfigError(f"need repeats >= 1, rounds >= 1 and warmup >= 0, got {self}")


@dataclass
class LayerTable:
    """Latency of one layer (and the BN/activation right after it) over its width grid."""

    axes: tuple[str, ...]
    widths: tuple[tuple[int, ...], ...]  # one ascending grid per axis
    latency_ms: np.ndarray  # shape: one dimension per axis (a scalar for no axes)
    block: str | None = None

    def lookup(self, widths: dict[str, int]) -> float:
        """Latency at ``widths`` (a value per axis group); multilinear between grid points."""
        point = [widths[a] for a in self.axes]
        if any(w == 0 for w in point):
            return 0.0
        weights: list[list[tuple[int, float]]] = []
        for axis, grid, w in zip(self.axes, self.widths, point, strict=True):
            if not grid[0] <= w <= grid[-1]:
                raise ConfigError(
                    f"width {w} of group {axis} is outside the latency table's grid {grid[0]}..{grid[-1]}; "
                    "rebuild the table with a finer --step or choose widths inside it"
                )
            hi = min(int(np.searchsorted(grid, w, side="left")), len(grid) - 1)
            if grid[hi] == w:
                weights.append([(hi, 1.0)])
                continue
            lo = hi - 1
            t = (w - grid[lo]) / (grid[hi] - grid[lo])
            weights.append([(lo, 1.0 - t), (hi, t)])
        total = 0.0
        for corner in itertools.product(*weights):
            index = tuple(i for i, _ in corner)
            total += float(np.prod([t for _, t in corner])) * float(self.latency_ms[index])
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": list(self.axes),
            "widths": [list(w) for w in self.widths],
            "latency_ms": np.asarray(self.latency_ms).tolist(),
            "block": self.block,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerTable:
        return cls(
            tuple(data["axes"]),
            tuple(tuple(int(v) for v in w) for w in data["widths"]),
            np.asarray(data["latency_ms"], dtype=float),
            data.get("block"),
        )


@dataclass(frozen=True)
class LatencyPredictor:
    """One end-to-end latency model, ``predicted_ms = scale x entries_ms + offset_ms``, and its held-out error.

    The errors are in percent of the measured latency, ``100 x (predicted - measured) / measured``,
    over ``cv_points`` held-out pruned models (``None`` when it was not cross-validated).
    """

    name: str  # one of PREDICTORS
    scale: float = 1.0
    offset_ms: float = 0.0
    cv_mean_abs_error_pct: float | None = None
    cv_max_abs_error_pct: float | None = None
    cv_points: int = 0

    def predict_ms(self, entries_ms: float) -> float:
        return self.scale * entries_ms + self.offset_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyPredictor:
        return cls(**data)


@dataclass
class LatencyTable:
    """Per-layer tables of one model at one clip shape, on one device/runtime."""

    model: dict[str, Any]  # zoo spec: name, num_classes, options
    clip_shape: tuple[int, int, int, int]
    runtime: LatencyRuntime
    layers: dict[str, LayerTable]
    dense_latency_ms: float
    group_grids: dict[str, tuple[int, ...]]
    scale: float = 1.0  # the "calibrated" fit (1.0 without calibration)
    overhead_ms: float | None = None  # its offset; None: the dense model's additive overhead
    calibration: list[dict[str, Any]] = field(default_factory=list)
    predictor: LatencyPredictor | None = None  # the model chosen by held-out error; None: scale/overhead_ms
    predictor_candidates: list[LatencyPredictor] = field(default_factory=list)  # all scored candidates
    env: dict[str, Any] = field(default_factory=dict)
    validation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dense_entries_ms(self) -> float:
        """Sum of the layer entries with every group at full width."""
        full = {g: grid[-1] for g, grid in self.group_grids.items()}
        return sum(t.lookup(full) for t in self.layers.values())

    @property
    def additive_overhead_ms(self) -> float:
        """What the layer entries miss on the dense model (measured end to end minus their sum), at least 0.

        Entries that sum to more than the whole model (big layers run faster inside it, or a busy
        machine while the table was timed) would give a negative offset that makes narrow models,
        and any tiny budget, look cheaper than they are; the offset stops at 0 (the raw sum).
        """
        return max(0.0, self.dense_latency_ms - self.dense_entries_ms)

    @property
    def offset_ms(self) -> float:
        """The additive term of the ``scale``/``overhead_ms`` model (the calibrated fit, or the additive one)."""
        return self.additive_overhead_ms if self.overhead_ms is None else self.overhead_ms

    @property
    def selected(self) -> LatencyPredictor:
        """The model :meth:`predict_ms` and the solver use: ``predictor``, else ``scale``/``offset_ms``."""
        if self.predictor is not None:
            return self.predictor
        name = "additive" if self.scale == 1.0 and self.overhead_ms is None else "calibrated"
        return LatencyPredictor(name, self.scale, self.offset_ms)

    def entries_ms(self, plan: PrunePlan) -> float:
        """Sum of the layer entries of the model pruned by ``plan`` (removed branches cost 0)."""
        removed = set(plan.removed_blocks)
        return sum(t.lookup(plan.widths) for t in self.layers.values() if t.block not in removed)

    def predict_ms(self, plan: PrunePlan) -> float:
        """Predicted end-to-end latency of the model pruned by ``plan`` (with the :attr:`selected` model)."""
        return self.selected.predict_ms(self.entries_ms(plan))

    def check_matches(self, structure: Structure, model_spec: dict[str, Any]) -> None:
        """Clear error when this table was built for another model, head or clip shape."""
        for key in ("name", "num_classes"):
            if self.model.get(key) != model_spec.get(key):
                raise ConfigError(
                    f"latency table was built for {key}={self.model.get(key)!r} but the model has "
                    f"{model_spec.get(key)!r}; rebuild it with 'dance3d latency-table --checkpoint ...'"
                )
        if tuple(self.clip_shape) != tuple(structure.clip_shape):
            raise ConfigError(
                f"latency table clip shape {self.clip_shape} differs from the model's {structure.clip_shape}"
            )
        if set(self.layers) != set(structure.layers) or set(self.group_grids) != set(structure.groups):
            raise ConfigError("latency table layers/groups do not match the model's structure; rebuild the table")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "clip_shape": list(self.clip_shape),
            "runtime": asdict(self.runtime),
            "dense_latency_ms": self.dense_latency_ms,
            "dense_entries_ms": self.dense_entries_ms,
            "scale": self.scale,
            "overhead_ms": self.overhead_ms,
            "calibration": self.calibration,
            "predictor": None if self.predictor is None else self.predictor.to_dict(),
            "predictor_candidates": [p.to_dict() for p in self.predictor_candidates],
            "group_grids": {g: list(w) for g, w in self.group_grids.items()},
            "layers": {name: t.to_dict() for name, t in self.layers.items()},
            "validation": self.validation,
            "env": self.env,
        }

    def save(self, path: str | Path) -> Path:
        return write_table(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        data = read_table(path, fmt=FORMAT, version=FORMAT_VERSION, what="latency table",
                          command="dance3d latency-table")  # fmt: skip
        return cls(
            model=data["model"],
            clip_shape=tuple(data["clip_shape"]),
            runtime=LatencyRuntime(**{"rounds": 1, **data["runtime"]}),  # tables before rounds: one
            layers={name: LayerTable.from_dict(t) for name, t in data["layers"].items()},
            dense_latency_ms=float(data["dense_latency_ms"]),
            group_grids={g: tuple(w) for g, w in data["group_grids"].items()},
            scale=float(data.get("scale", 1.0)),
            overhead_ms=data.get("overhead_ms"),
            calibration=data.get("calibration", []),
            predictor=None if data.get("predictor") is None else LatencyPredictor.from_dict(data["predictor"]),
            predictor_candidates=[LatencyPredictor.from_dict(p) for p in data.get("predictor_candidates", [])],
            env=data.get("env", {}),
            validation=data.get("validation", []),
        )
