"""Sweeps: model variants x execution modes x batch sizes x repeats on the current device.

The engine knows nothing about any model family: it takes named model factories and a
``prepare(model, mode)`` hook that returns what to call for that execution mode. Each finished
measurement is appended to a sidecar journal (``<out>.journal.jsonl``, fsync'd) and the table is
rewritten atomically, so an interrupted sweep resumes without redoing finished rows (keyed by
variant, mode, batch_size, repeat). One row per measurement; units are in the column names.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from profiling.conditions import collect_conditions
from profiling.energy import NOT_REQUESTED, EnergyResult, measure_or_estimate, no_energy, resolve_meter
from profiling.env import device_name
from profiling.inputs import to_device
from profiling.latency import LatencyStats, measure_latency
from profiling.macs import MacCount, count_macs
from profiling.meters.base import EnergyMeter, MeterError
from profiling.meters.estimated import EstimatedEnergyModel
from profiling.meters.idle import IdleBaseline, measure_idle_power
from profiling.profiler import count_params
from profiling.strict_json import dumps_strict

KEY_COLUMNS = ("variant", "mode", "batch_size", "repeat")
Key = tuple[str, str, int, int]


@dataclass(frozen=True)
class SweepPoint:
    variant: str
    mode: str
    batch_size: int
    repeat: int

    @property
    def key(self) -> Key:
        return (self.variant, self.mode, self.batch_size, self.repeat)


def sweep_grid(
    variants: Sequence[str], modes: Sequence[str], batch_sizes: Sequence[int], repeats: int
) -> list[SweepPoint]:
    """All points, in run order (a variant's model is built once)."""
    return [SweepPoint(v, m, int(b), r) for v in variants for m in modes for b in batch_sizes for r in range(repeats)]


def _row_key(row: Mapping[str, Any]) -> Key:
    return (str(row["variant"]), str(row["mode"]), int(row["batch_size"]), int(row["repeat"]))


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal.jsonl")


def _check_format(out: Path) -> None:
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"sweep output must end in .csv or .parquet, got {out}")


def read_table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Replace ``out`` (``.parquet``, else CSV) atomically: write a temp file beside it, then rename."""
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    os.replace(tmp, out)


def _append_journal(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(dumps_strict(row, indent=None) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_finished(out: Path) -> dict[Key, dict[str, Any]]:
    """Rows already measured: the table (if any) plus the journal (a torn last line is ignored)."""
    finished: dict[Key, dict[str, Any]] = {}
    if out.exists():
        for row in read_table(out).to_dict("records"):
            finished[_row_key(row)] = row
    journal = journal_path(out)
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # interrupted while writing this line: that row is redone
            finished[_row_key(row)] = row
    return finished


def _row(
    point: SweepPoint,
    *,
    device: str,
    device_label: str,
    params: int,
    counts: MacCount,
    latency: LatencyStats,
    energy: EnergyResult,
    conditions: Mapping[str, Any],
) -> dict[str, Any]:
    """One table row; ``conditions`` (power mode, clocks, governor, sensor averaging) go in as columns."""
    clips = point.batch_size
    return {
        "variant": point.variant,
        "mode": point.mode,
        "batch_size": clips,
        "repeat": point.repeat,
        "device": device,
        "device_name": device_label,
        "meter": energy.meter,
        "energy_source": energy.energy_source,
        "energy_status": energy.energy_status,
        "params": params,
        "macs": counts.macs,
        "macs_per_clip": counts.macs / clips,
        "bytes_read": counts.bytes_read,
        "bytes_written": counts.bytes_written,
        "bytes_source": counts.bytes_source,
        "latency_ms": latency.median_ms,
        "latency_p90_ms": latency.p90_ms,
        "latency_mean_ms": latency.mean_ms,
        "latency_per_clip_ms": latency.median_ms / clips,
        "latency_repeats": latency.repeats,
        "timer": latency.timer,
        "energy_j": energy.energy_j,
        "energy_per_clip_j": energy.energy_j / clips,
        "dynamic_energy_j": energy.dynamic_energy_j,
        "power_w": energy.power_w,
        "idle_power_w": energy.idle_power_w,
        "window_energy_j": energy.window_energy_j,
        "window_s": energy.window_s,
        "window_iterations": energy.window_iterations,
        "window_start_epoch_s": energy.window_start_epoch_s,
        "window_end_epoch_s": energy.window_end_epoch_s,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        **conditions,
    }


def _default_prepare(model: nn.Module, mode: str) -> Callable[..., Any]:
    return model.eval()


@dataclass
class _Measurer:
    """Settings shared by every point; measures one point."""

    device: torch.device
    warmup: int
    latency_repeats: int
    meter: EnergyMeter | None
    unavailable_reason: str
    energy_requested: bool
    energy_model: EstimatedEnergyModel | None
    min_window_s: float | None
    min_window_iterations: int
    idle: IdleBaseline | None
    timed_window: bool
    idle_s: float = 0.0
    cold_idle_w: float = float("nan")
    idle_variant: str | None = None

    def rebaseline(self, variant: str) -> None:
        """Re-measure idle power once per variant, after its warm-up (``idle_s > 0``): devices idle
        higher once warm, so a cold baseline alone overstates dynamic energy."""
        if self.idle_s > 0 and self.meter is not None and self.idle_variant != variant:
            self.idle_variant = variant
            try:
                self.idle = measure_idle_power(self.meter, duration_s=self.idle_s)
            except MeterError:
                self.idle = None  # no stale baseline; the energy window reports the meter's state

    def idle_drift_w(self) -> float:
        """Current idle power minus the cold one measured before the sweep (NaN without both)."""
        return self.idle.power_w - self.cold_idle_w if self.idle is not None else float("nan")

    def latency(self, runner: Callable[..., Any], inputs: Any) -> LatencyStats:
        return measure_latency(runner, inputs, warmup=self.warmup, repeats=self.latency_repeats, device=self.device)

    def energy(self, runner: Callable[..., Any], inputs: Any, counts: MacCount, latency: LatencyStats) -> EnergyResult:
        if not (self.energy_requested or self.timed_window):
            return no_energy(NOT_REQUESTED)
        return measure_or_estimate(
            runner,
            inputs,
            meter=self.meter,
            energy_model=self.energy_model,
            macs=counts.macs,
            bytes_moved=counts.bytes_read + counts.bytes_written,
            latency_s=latency.median_ms / 1e3,
            device=self.device,
            min_window_s=self.min_window_s,
            min_iterations=self.min_window_iterations,
            idle=self.idle,
            unavailable_reason=self.unavailable_reason,
            timed_window=self.timed_window,
        )


def run_sweep(
    variants: Mapping[str, Callable[[], nn.Module]],
    make_inputs: Callable[[int], Any],
    out: str | Path,
    *,
    batch_sizes: Sequence[int] = (1,),
    modes: Sequence[str] = ("default",),
    prepare: Callable[[nn.Module, str], Callable[..., Any]] | None = None,
    repeats: int = 1,
    device: str = "cpu",
    warmup: int = 5,
    latency_repeats: int = 20,
    meter: EnergyMeter | str | None = "auto",
    energy_model: EstimatedEnergyModel | None = None,
    min_window_s: float | None = None,
    min_window_iterations: int = 3,
    idle: IdleBaseline | None = None,
    idle_s: float = 0.0,
    timed_window: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Measure every (variant, mode, batch_size, repeat) not yet in ``out``; return the full table.

    ``variants`` maps names to zero-argument model factories (called once per variant, and only
    if that variant has rows left). ``make_inputs(batch_size)`` gives the inputs (the same ones
    for every variant). ``prepare(model, mode)`` returns what to call in that execution mode
    (default: ``model.eval()``). ``meter``: ``"auto"``, a meter, or None (no energy);
    ``energy_model`` estimates energy where no meter works. ``idle`` (a baseline taken with the
    same meter) or ``idle_s > 0`` (measure idle power first) makes rows carry dynamic energy; with
    ``idle_s > 0`` idle power is measured again for each variant after its warm-up, and rows carry
    ``idle_drift_w``, that baseline minus the first (cold) one.
    ``timed_window=True`` runs the energy window even without a meter, so a separately recorded
    rail log can be joined on the window epoch columns. A failing idle measurement raises
    :class:`MeterError` before anything is measured.
    A meter failing mid-sweep marks its rows (``energy_status="failed: ..."``, NaN energy) and the
    sweep goes on; an exception from a model or hook stops it, and a re-run resumes.
    """
    out = Path(out)
    _check_format(out)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not variants:
        raise ValueError("no variants to sweep")
    dev = torch.device(device)
    finished = load_finished(out)
    todo = [p for p in sweep_grid(list(variants), modes, batch_sizes, repeats) if p.key not in finished]
    if not todo:
        return read_table(out)
    chosen, reason = resolve_meter(meter, dev) if meter is not None else (None, "no meter requested")
    try:
        if idle is None and chosen is not None and idle_s > 0:
            idle = measure_idle_power(chosen, duration_s=idle_s)
        measurer = _Measurer(
            device=dev,
            warmup=warmup,
            latency_repeats=latency_repeats,
            meter=chosen,
            unavailable_reason=reason,
            energy_requested=meter is not None or energy_model is not None,
            energy_model=energy_model,
            min_window_s=min_window_s,
            min_window_iterations=min_window_iterations,
            idle=idle,
            timed_window=timed_window,
            idle_s=idle_s if idle_s > 0 else 0.0,
            cold_idle_w=idle.power_w if idle is not None else float("nan"),
        )
        _run_points(
            todo,
            variants,
            make_inputs,
            prepare or _default_prepare,
            measurer,
            out=out,
            rows=list(finished.values()),
            progress=progress,
        )
    finally:
        if chosen is not None and isinstance(meter, str):  # selected here, so closed here
            chosen.close()
    journal_path(out).unlink(missing_ok=True)
    return read_table(out)


def _run_points(
    todo: list[SweepPoint],
    variants: Mapping[str, Callable[[], nn.Module]],
    make_inputs: Callable[[int], Any],
    prepare: Callable[[nn.Module, str], Callable[..., Any]],
    measurer: _Measurer,
    *,
    out: Path,
    rows: list[dict[str, Any]],
    progress: bool,
) -> None:
    dev = measurer.device
    label = device_name(dev)
    inputs_cache: dict[int, Any] = {}
    groups: dict[tuple[str, str, int], list[SweepPoint]] = {}
    for point in todo:
        groups.setdefault((point.variant, point.mode, point.batch_size), []).append(point)
    with tqdm(total=len(todo), desc=f"sweep on {dev}", disable=not progress, unit="row") as bar:
        for variant in dict.fromkeys(p.variant for p in todo):
            model = variants[variant]().to(dev)
            params = count_params(model)
            conditions = collect_conditions(str(dev))  # re-read per variant: clocks and modes can change
            runner, prepared_mode = None, None
            for (group_variant, mode, batch_size), points in groups.items():
                if group_variant != variant:
                    continue
                if mode != prepared_mode:  # prepare may set the model's mode in place: once per change of mode
                    runner, prepared_mode = prepare(model, mode), mode
                if batch_size not in inputs_cache:
                    inputs_cache[batch_size] = to_device(make_inputs(batch_size), dev)
                inputs = inputs_cache[batch_size]
                counts = count_macs(runner, inputs, module=model)
                for point in points:
                    bar.set_postfix_str(f"{variant}/{mode}/b{batch_size}/r{point.repeat}", refresh=False)
                    latency = measurer.latency(runner, inputs)  # also the variant's warm-up
                    measurer.rebaseline(variant)
                    energy = measurer.energy(runner, inputs, counts, latency)
                    row = _row(
                        point,
                        device=str(dev),
                        device_label=label,
                        params=params,
                        counts=counts,
                        latency=latency,
                        energy=energy,
                        conditions={**conditions, "idle_drift_w": measurer.idle_drift_w()},
                    )
                    _append_journal(journal_path(out), row)
                    rows.append(row)
                    write_table(pd.DataFrame.from_records(rows), out)
                    bar.update(1)
            del model, runner
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
