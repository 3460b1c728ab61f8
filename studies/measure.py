"""Measure one configuration of a model: accuracy, MACs, keep rates, latency and energy.

Accuracy, MACs and keep rates come from one pass over the validation clips (preloaded once per
worker). MACs and keep rates are the dynamic model's analytic per-clip accounting (what compact
execution would run; ``docs/dance.md``). Latency and energy are measured by the profiling layer
on one batch of the first ``batch_size`` clips, on the current device, in the chosen execution
mode: in ``simulate`` mode masks are applied to dense tensors, so these show what that mode
really costs, not what pruning would save.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from dance3d.errors import ConfigError, DataError
from profiling.energy import measure_or_estimate, no_energy
from profiling.latency import measure_latency
from profiling.macs import count_macs
from profiling.meters.base import EnergyMeter
from profiling.meters.estimated import EstimatedEnergyModel
from profiling.meters.select import select_meter

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalSet:
    """Validation clips and labels, stacked once."""

    clips: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_eval_set(dataset: Dataset, *, limit: int | None = None) -> EvalSet:
    """The first ``limit`` clips of ``dataset`` (all if None) as two tensors."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise DataError("the validation dataset is empty")
    items = [dataset[i] for i in range(count)]
    return EvalSet(torch.stack([item["clip"] for item in items]), torch.tensor([int(i["label"]) for i in items]))


@dataclass
class EnergySetup:
    """How energy is obtained: a working meter, a labelled estimate, or nothing (and why)."""

    meter: EnergyMeter | None = None
    estimate: EstimatedEnergyModel | None = None
    reason: str = "not requested"

    @property
    def requested(self) -> bool:
        return self.meter is not None or self.estimate is not None

    @property
    def label(self) -> str:
        """``measured: <meter>``, ``estimated`` or ``none``: for trial attrs and axis labels."""
        if self.meter is not None:
            return f"measured: {self.meter.name}"
        return "estimated" if self.estimate is not None else "none"

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()


def setup_energy(
    *, wanted: bool, required: bool, device: str, estimate: tuple[float, float, float] | None
) -> EnergySetup:
    """Pick the best working meter for ``device``; fall back to the estimate; fail if ``required`` and neither."""
    if not (wanted or required):
        return EnergySetup()
    selection = select_meter(str(torch.device(device)))
    if selection.meter is not None:
        return EnergySetup(meter=selection.meter)
    if estimate is not None:
        joules_per_mac, joules_per_byte, static_w = estimate
        model = EstimatedEnergyModel(joules_per_mac, joules_per_byte, static_w, device=device)
        return EnergySetup(estimate=model, reason=selection.reason)
    if required:
        raise ConfigError(
            f"energy is an objective or constraint but no energy meter works on {device}: {selection.reason}. "
            "Give estimate coefficients (--energy-estimate J_PER_MAC,J_PER_BYTE,STATIC_W) or drop energy"
        )
    return EnergySetup(reason=selection.reason)


def _percentiles(values: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}_p{q}": float(np.percentile(values, q)) for q in (10, 50, 90)}


def summarise_clip_stats(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Mean MACs, MAC fraction (mean, p10/p50/p90) and mean per-gated-block keep rates over clips."""
    fractions = np.array([r["mac_fraction"] for r in rows], dtype=float)
    keep_keys = sorted(k for k in rows[0] if k.startswith("g") and k.endswith("_keep"))
    return {
        "macs": float(np.mean([r["macs"] for r in rows])),
        "mac_fraction": float(fractions.mean()),
        **_percentiles(fractions, "mac_fraction"),
        "keep_rates": {k: float(np.mean([r[k] for r in rows])) for k in keep_keys},
    }


def counted_costs(forward: Forward, inputs: torch.Tensor, *, module: nn.Module, dense_macs: float) -> dict[str, Any]:
    """MACs of a model without per-clip stats (a plain dense one), counted from the executed ops on ``inputs``
    (one clip), as the cost columns a trial's stats give: every percentile is the one value, no keep rates."""
    macs = float(count_macs(forward, inputs, module=module).macs)
    fraction = macs / dense_macs
    return {"macs": macs, "mac_fraction": fraction, **{f"mac_fraction_p{q}": fraction for q in (10, 50, 90)},
            "keep_rates": {}}  # fmt: skip


@torch.no_grad()
def run_accuracy(
    forward: Forward, eval_set: EvalSet, *, batch_size: int, clip_stats: Callable[[], list[dict]] | None
) -> tuple[float, list[dict[str, float]]]:
    """Top-1 accuracy of ``forward`` over ``eval_set`` and the per-clip stats the model reports."""
    correct, rows = 0, []
    for start in range(0, len(eval_set), batch_size):
        clips = eval_set.clips[start : start + batch_size]
        logits = forward(clips)
        if not torch.isfinite(logits).all():
            raise DataError(f"the model produced NaN/inf logits on clips {start}..{start + len(clips) - 1}")
        correct += int((logits.argmax(dim=1) == eval_set.labels[start : start + batch_size]).sum())
        if clip_stats is not None:
            rows.extend(clip_stats())
    return correct / len(eval_set), rows


@dataclass
class Measurer:
    """Measures configurations of one model on one worker with fixed settings."""

    eval_set: EvalSet
    device: torch.device
    eval_batch_size: int
    latency_warmup: int
    latency_repeats: int
    energy: EnergySetup

    def measure(
        self,
        forward: Forward,
        *,
        module: nn.Module,
        batch_size: int,
        clip_stats: Callable[[], list[dict]] | None,
        dense_macs: float,
    ) -> dict[str, Any]:
        """All measurements of one configuration (``forward`` already set up); units in the keys.

        Without ``clip_stats`` (a plain dense model) MACs are counted from the executed ops of one
        clip and the MAC fraction is relative to ``dense_macs``.
        """
        if batch_size > len(self.eval_set):
            raise ConfigError(f"batch size {batch_size} is larger than the {len(self.eval_set)} validation clips")
        started = time.perf_counter()
        accuracy, rows = run_accuracy(forward, self.eval_set, batch_size=self.eval_batch_size, clip_stats=clip_stats)
        if rows:
            costs = summarise_clip_stats(rows)
        else:
            costs = counted_costs(forward, self.eval_set.clips[:1], module=module, dense_macs=dense_macs)
        speed = measure_speed(
            forward,
            self.eval_set.clips[:batch_size],
            module=module,
            device=self.device,
            warmup=self.latency_warmup,
            repeats=self.latency_repeats,
            energy=self.energy,
        )
        return {
            "accuracy": accuracy,
            "num_clips": len(self.eval_set),
            **costs,
            **speed,
            "measure_s": time.perf_counter() - started,
        }


def measure_speed(
    forward: Forward,
    inputs: torch.Tensor,
    *,
    module: nn.Module,
    device: torch.device,
    warmup: int,
    repeats: int,
    energy: EnergySetup,
) -> dict[str, Any]:
    """Latency (profiling layer) and energy of ``forward`` on the batch ``inputs``; units in the keys."""
    batch_size = len(inputs)
    latency = measure_latency(forward, inputs, warmup=warmup, repeats=repeats, device=device)
    joules = _energy(energy, forward, inputs, module=module, latency_s=latency.median_ms / 1e3, device=device)
    return {
        "batch_size": batch_size,
        "latency_ms": latency.median_ms,
        "latency_p90_ms": latency.p90_ms,
        "latency_per_clip_ms": latency.median_ms / batch_size,
        "latency_repeats": latency.repeats,
        "energy_j": joules.energy_j,
        "energy_per_clip_j": joules.energy_j / batch_size,
        "energy_source": joules.energy_source,
        "energy_status": joules.energy_status,
        "meter": joules.meter,
    }


def _energy(
    setup: EnergySetup,
    forward: Forward,
    inputs: torch.Tensor,
    *,
    module: nn.Module,
    latency_s: float,
    device: torch.device,
):
    if not setup.requested:
        return no_energy(f"unavailable: {setup.reason}" if setup.reason != "not requested" else "not requested")
    macs = bytes_moved = 0
    if setup.meter is None:  # an estimate needs the executed cost of the batch
        counts = count_macs(forward, inputs, module=module)
        macs, bytes_moved = counts.macs, counts.bytes_read + counts.bytes_written
    return measure_or_estimate(
        forward,
        inputs,
        meter=setup.meter,
        energy_model=setup.estimate,
        macs=macs,
        bytes_moved=bytes_moved,
        latency_s=latency_s,
        device=device,
    )
