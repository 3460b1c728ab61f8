"""The cost side of device-aware DANCE on a zoo model with random weights (no accuracy, only cost).

Two questions, on one device at batch 1:

1. Does the block cost table (:func:`~dance3d.dance.device_cost_measure.build_cost_table`) predict the
   whole model's compact latency? :func:`~dance3d.dance.device_cost_measure.check_prediction` at a few
   keep levels.
2. How far do counted MACs mispredict time, axis by axis? The whole model runs compact with fixed decisions
   (no controller) cutting only frames, only channels, only tiles, or all three, at a keep level, timed
   beside the all-kept model in one interleaved measurement. Per point: the MAC fraction the model counts,
   the measured latency ratio to all-kept, the table's predicted ratio, and the *realisation*
   ``(1 / latency ratio) / (1 / MAC fraction)``: the share of the MAC cut that became speed-up (1 = all).

The model is the one ``dance3d cost-table`` times: a random-weight dense checkpoint converted with the
default dynamic config (:func:`~dance3d.dance.device_cost_measure.dynamic_model_of`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import DENSE, Checkpoint, save_checkpoint
from dance3d.dance.device_cost import BlockCostTable, Level
from dance3d.dance.device_cost_measure import (
    AXES,
    OperatingPoint,
    build_cost_table,
    check_prediction,
    dynamic_model_of,
    time_levels,
)
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicModel
from dance3d.errors import ConfigError
from dance3d.figures import subplots
from dance3d.mdp.lut import LatencyRuntime, error_pct
from dance3d.models import create_model, model_info
from profiling.meters import EnergyMeter

ALL_KEPT = "all-kept"
TOLERANCE_PCT = 10.0  # of every target
NO_DATA = "none (random weights, for cost only)"  # the checkpoint's data source: it was trained on nothing
CUTS: dict[str, tuple[str, ...]] = {"frames": ("frames",), "channels": ("channels",), "tiles": ("tiles",), "all": AXES}
"""The points' names and the axes each cuts."""


@dataclass(frozen=True)
class ZooCostSettings:
    """One run: the model and clip, how it is timed, and the keep levels checked."""

    model: str = "r2plus1d_18"
    clip: tuple[int, int, int] = (8, 112, 112)  # frames, height, width
    num_classes: int = 400  # the head of a Kinetics-400 model; random weights either way
    runtime: LatencyRuntime = field(  # timed as `dance3d cost-table` times by default
        default_factory=lambda: LatencyRuntime(threads=1, warmup=5, repeats=10, rounds=3)
    )
    check_keep_fractions: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    cut_keep_fractions: tuple[float, ...] = (0.5, 0.25)
    seed: int = 0


SETTINGS: dict[str, ZooCostSettings] = {
    # r2plus1d_18 at 8x112x112 has 184 table entries; one call of each, of the 4 checked and of the 9 cut models took
    # 13.7 s of CPU on one core at 1 thread, so the run's (5 + 10) x 3 calls of each should take about 10-11 minutes
    "default": ZooCostSettings(),
    "quick": ZooCostSettings(
        model="tiny", clip=(4, 64, 64), runtime=LatencyRuntime(threads=1, warmup=1, repeats=2, rounds=1)
    ),
}


def settings_record(settings: ZooCostSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["clip"] = list(settings.clip)
    return record


def save_random_dense(
    name: str, clip: tuple[int, int, int], path: str | Path, *, num_classes: int = 400, seed: int = 0
) -> Path:
    """A ``dense`` checkpoint of zoo model ``name`` with fresh random weights, for clips ``clip`` (T, H, W)."""
    if model_info(name).family == "forecast":
        raise ConfigError(f"model {name!r} is a forecaster; the cost table is for video classifiers")
    if min(clip) < 1:
        raise ConfigError(f"clip {'x'.join(map(str, clip))}: frames, height and width must be at least 1")
    torch.manual_seed(seed)
    model = create_model(name, num_classes=num_classes).eval()
    spec = {"name": name, "num_classes": num_classes, "options": {}}
    classes = [f"class{i}" for i in range(num_classes)]
    data = DataConfig(source=NO_DATA, num_frames=clip[0], height=clip[1], width=clip[2])
    record = Checkpoint.create(DENSE, spec, model.state_dict(), data=data, classes=classes, random_weights=True)
    return save_checkpoint(record, path)


def dynamic_zoo_model(checkpoint: str | Path, clip: tuple[int, int, int]) -> tuple[DynamicModel, dict[str, Any]]:
    """The checkpoint converted as ``dance3d cost-table`` converts it, after one all-kept forward at ``clip``
    (a clip the model cannot run is a :class:`ConfigError`)."""
    try:
        model, spec = dynamic_model_of(checkpoint)
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, *clip), decisions=model.full_decisions(1))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"the model cannot run clips {'x'.join(map(str, clip))}: {first_line}") from error
    return model, spec


@dataclass(frozen=True)
class CutPoint:
    """One whole-model run: which cut (:data:`CUTS`, or ``none``), at which keep fraction, each block's level."""

    cut: str
    keep_fraction: float
    levels: list[Level]


def cut_points(model: DynamicModel, keep_fractions: tuple[float, ...]) -> tuple[dict[str, CutPoint], list[str]]:
    """The all-kept point and each cut at each keep fraction (its axes cut to the grid level at or above the
    fraction, the other axes kept), by name (``frames@0.5``); and the names skipped because they cut nothing on
    this model (e.g. tiles where every block's map is one tile). Nothing to cut at all is a :class:`ConfigError`."""
    full = OperatingPoint(1.0).levels(model)
    points = {ALL_KEPT: CutPoint("none", 1.0, full)}
    skipped = []
    for fraction in keep_fractions:
        for cut, axes in CUTS.items():
            levels = OperatingPoint(fraction, axes).levels(model)
            if levels == full:
                skipped.append(f"{cut}@{fraction:g}")
            else:
                points[f"{cut}@{fraction:g}"] = CutPoint(cut, fraction, levels)
    if len(points) == 1:
        raise ConfigError(
            f"at clips {'x'.join(map(str, model.clip_shape))} no gated block has a level below all-kept on any axis: "
            "nothing to cut; use a larger clip"
        )
    return points, skipped


def measure_cuts(
    model: DynamicModel, table: BlockCostTable, runtime: LatencyRuntime, *, keep_fractions: tuple[float, ...],
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """The :func:`cut_points` timed in one interleaved measurement beside the all-kept model (fixed decisions, no
    controller, compact mode): one row per point, and the names of the cuts skipped."""
    points, skipped = cut_points(model, keep_fractions)
    measured, mac_fractions = time_levels(model, {name: p.levels for name, p in points.items()}, runtime, seed=seed)
    predicted_full = table.predict(points[ALL_KEPT].levels, controller=False)
    rows = []
    for name, point in points.items():
        predicted = table.predict(point.levels, controller=False)
        latency_ratio = measured[name] / measured[ALL_KEPT]
        rows.append({
            "point": name,
            "cut": point.cut,
            "keep_fraction": point.keep_fraction,
            "levels": [list(level) for level in point.levels],
            "mac_fraction": mac_fractions[name],
            "measured_ms": measured[name],
            "latency_ratio": latency_ratio,
            "predicted_ms": predicted,
            "predicted_ratio": predicted / predicted_full,
            "prediction_error_pct": error_pct(predicted, measured[name]),
            "realisation": mac_fractions[name] / latency_ratio,
        })  # fmt: skip
    return rows, skipped


def targets(table_check: list[dict[str, Any]], cut_rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Pass/fail: the table within 10% at every checked keep level and at every cut, and the counted MAC fraction
    within 10% of the measured latency ratio at every cut (expected to fail: MACs are not time)."""
    cuts = [r for r in cut_rows if r["cut"] != "none"]
    mac_errors = [error_pct(r["mac_fraction"], r["latency_ratio"]) for r in cuts]
    return {
        "table_prediction_within_10pct": _all_within(r["error_pct"] for r in table_check),
        "table_predicts_cuts_within_10pct": _all_within(r["prediction_error_pct"] for r in cuts),
        "macs_predict_latency_within_10pct": _all_within(mac_errors),
    }


def _all_within(errors_pct: Iterable[float]) -> bool:
    errors = list(errors_pct)
    return bool(errors) and all(abs(e) <= TOLERANCE_PCT for e in errors)


def run_zoo_cost(
    settings: ZooCostSettings,
    *,
    work_dir: str | Path,
    meter: EnergyMeter | None = None,
    energy_status: str = "not requested",
    progress: bool = True,
) -> dict[str, Any]:
    """Checkpoint, cost table (``work_dir/cost_table.json``; joules per entry too with a ``meter``, otherwise
    ``energy_status`` says why not), table check and cuts: the result's body (``table``, ``table_check``, ``cuts``,
    ``skipped_cuts``, ``targets``, ``timings_s``)."""
    work_dir = Path(work_dir)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    checkpoint = save_random_dense(settings.model, settings.clip, work_dir / "dense.pt",
                                   num_classes=settings.num_classes, seed=settings.seed)  # fmt: skip
    model, spec = dynamic_zoo_model(checkpoint, settings.clip)
    cut_points(model, settings.cut_keep_fractions)  # a clip with nothing to cut fails before the timing
    timings["model"] = time.perf_counter() - started
    started = time.perf_counter()
    table = build_cost_table(model, spec, runtime=settings.runtime, meter=meter, energy_status=energy_status,
                             seed=settings.seed, progress=progress)  # fmt: skip
    table_path = table.save(work_dir / "cost_table.json")
    timings["cost_table"] = time.perf_counter() - started
    started = time.perf_counter()
    table_check = check_prediction(model, table, settings.runtime, keep_fractions=settings.check_keep_fractions)
    timings["table_check"] = time.perf_counter() - started
    started = time.perf_counter()
    rows, skipped = measure_cuts(model, table, settings.runtime, keep_fractions=settings.cut_keep_fractions,
                                 seed=settings.seed)  # fmt: skip
    timings["cuts"] = time.perf_counter() - started
    return {
        "table": {
            "path": str(table_path),
            "gated_blocks": len(table.blocks),
            "entries": sum(b.latency_ms.size for b in table.blocks),
            "dense_ms": table.dense_ms,
            "overhead_ms": table.overhead(),
            "controller_ms": table.controller_ms,
            "energy": table.energy_status if not table.has_energy else f"ok ({table.energy_meter})",
            "dense_j": table.dense_j,
            "levels": [list(map(list, b.grids)) for b in table.blocks],
        },
        "table_check": table_check,
        "cuts": rows,
        "skipped_cuts": skipped,
        "targets": targets(table_check, rows),
        "timings_s": timings,
    }


def format_cuts(rows: list[dict[str, Any]]) -> str:
    """The cuts as a printed table."""
    header = f"{'point':<14} {'MAC frac':>8} {'measured ms':>11} {'lat ratio':>9} {'table ratio':>11} {'realised':>8}"
    lines = [header]
    for r in rows:
        lines.append(f"{r['point']:<14} {r['mac_fraction']:>8.3f} {r['measured_ms']:>11.2f} {r['latency_ratio']:>9.3f} "
                     f"{r['predicted_ratio']:>11.3f} {r['realisation']:>8.2f}")  # fmt: skip
    return "\n".join(lines)


def plot_cuts(rows: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Counted MAC fraction against measured latency ratio, one marker per cut (labelled with its keep fraction),
    with the line y = x."""
    fig, ax = subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="latency = MACs")
    for cut, marker in (("none", "*"), ("frames", "o"), ("channels", "s"), ("tiles", "^"), ("all", "D")):
        points = [r for r in rows if r["cut"] == cut]
        if points:
            ax.scatter([r["mac_fraction"] for r in points], [r["latency_ratio"] for r in points], marker=marker,
                       label=ALL_KEPT if cut == "none" else f"{cut} cut")  # fmt: skip
        for r in points:
            if cut != "none":
                ax.annotate(f"{r['keep_fraction']:g}", (r["mac_fraction"], r["latency_ratio"]), xytext=(4, -10),
                            textcoords="offset points", fontsize=7)  # fmt: skip
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("counted MAC fraction")
    ax.set_ylabel("measured latency / all-kept latency")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
