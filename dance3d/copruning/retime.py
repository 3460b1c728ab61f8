"""Re-time a finished co-pruning benchmark run: its dense and coupled models at batch 1, on the current code.

The benchmark (:mod:`dance3d.copruning.benchmark`) times its models once, at the end of a 20-35 minute
run. When the execution code changes and the trained models do not, this measures them again the
same way (the first ``samples`` test samples, models alternating inside every repeat) without
training anything: dense (as trained, and with channels-last weights; speed-ups read the faster),
the coupled model in compact execution and, for SimVP and the ConvLSTM, the
same with a dense fallback measured on the first sample (:mod:`dance3d.copruning.fallback`); the
run's data-only and model-only models the same way where the folder holds them. It reports each
speed-up, the timed samples' MAC fraction and the realisation efficiency (speed-up over the ideal
1 / MAC fraction); and the throughput of each model on one batch of the first ``batch`` test samples
(dense runs them as one batch; compact SimVP and ConvLSTM one by one; the compact Transformer batches
its row-wise layers).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import load_checkpoint, load_model
from dance3d.config import from_dict
from dance3d.copruning.benchmark import (
    DENSE_BASELINES,
    batch1_latency_ms,
    batch_throughput,
    best_dense,
    check_dense,
    dense_baselines,
    first_samples,
    timed_mac_fraction,
)
from dance3d.copruning.fallback import WholeMapFallback, calibrate_fallback, with_fallback
from dance3d.copruning.retime_energy import NOT_REQUESTED, energy_per_sample, unavailable
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError
from dance3d.training.trainer import resolve_device
from profiling import collect_env
from profiling.energy import resolve_meter
from profiling.meters import EnergyMeter

BENCHMARK = "dyna_forecast_latency"
MIN_SPEEDUP = 2.0
VARIANTS = ("coupled", "data_only", "model_only")
"""The co-pruned models of a finished run, by folder; ``coupled`` must exist, the others are timed where present."""


@dataclass(frozen=True)
class RetimeSettings:
    """Which samples and how many repeats (the benchmark's defaults: 16 samples, 7 repeats), and the batch
    size throughput is measured at."""

    samples: int = 16
    repeats: int = 7
    batch: int = 32
    seed: int = 0
    device: str = "cpu"
    energy_window_s: float = 2.0  # per model and batch size, where a meter measures energy

    def __post_init__(self) -> None:
        if min(self.samples, self.repeats, self.batch) < 1:
            raise ConfigError(
                f"samples, repeats and batch must be >= 1, got {self.samples}, {self.repeats} and {self.batch}"
            )
        if not self.energy_window_s > 0:
            raise ConfigError(f"energy_window_s must be > 0, got {self.energy_window_s}")
        resolve_device(self.device)  # auto, cpu, cuda, cuda:N; a GPU asked for must be there


def retime(
    work: Path, dense_checkpoint: Path, settings: RetimeSettings, *, tag: str, meter: EnergyMeter | str | None = None
) -> dict[str, Any]:
    """The re-timing of the run in ``work`` (its ``coupled/model.pt``, and ``data_only`` / ``model_only`` where
    present) against ``dense_checkpoint``, on ``settings.device``; with ``meter`` (``"auto"``: the one ``show-env``
    selects for the device) also joules per sample (:mod:`dance3d.copruning.retime_energy`)."""
    started = time.perf_counter()
    coupled_path = work / "coupled" / "model.pt"
    for path in (coupled_path, dense_checkpoint):
        if not path.exists():
            raise ConfigError(f"{path} does not exist (a finished dyna_forecast run's --work folder is needed)")
    backbone = check_dense(dense_checkpoint)
    data = from_dict(DataConfig, load_checkpoint(dense_checkpoint).data)
    loaded = load_model(dense_checkpoint)
    device = resolve_device(settings.device)
    dense = loaded.model.eval().to(device)
    test_set = build_dataset(data, "test", classes=loaded.classes)
    inputs = [x.to(device) for x in first_samples(test_set, settings.samples)]
    models: dict[str, torch.nn.Module] = dense_baselines(dense)
    calibrations = {}
    for variant in VARIANTS:
        path = work / variant / "model.pt"
        if not path.exists():
            continue
        model = load_model(path).model.eval().to(device).set_mode("compact")
        models[f"{variant}_compact"] = model
        if isinstance(model, WholeMapFallback):
            calibrations[variant] = calibrate_fallback(model, inputs[0], seed=settings.seed)
            models[f"{variant}_compact_fallback"] = with_fallback(model, calibrations[variant])
    latency = batch1_latency_ms(models, inputs, repeats=settings.repeats)
    batch = torch.cat(first_samples(test_set, settings.batch)).to(device)
    throughput = batch_throughput(models, batch, repeats=settings.repeats)
    energy = _energy(models, inputs, batch, meter, settings)
    fractions = {name: timed_mac_fraction(model, inputs) for name, model in models.items()
                 if name not in DENSE_BASELINES}  # fmt: skip
    speedups = {name: best_dense(latency) / latency[name] for name in fractions}
    efficiency = {name: speedups[name] * fractions[name] for name in fractions}
    best = max(value for name, value in speedups.items() if name.startswith("coupled_"))
    return {
        "benchmark": BENCHMARK,
        "tag": tag,
        "seed": settings.seed,
        "quick": False,
        "settings": {
            **asdict(settings),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "backbone": backbone,
            "work": str(work),
            "dense_checkpoint": str(dense_checkpoint),
        },  # fmt: skip
        "machine": collect_env(),
        "timings_s": {"total": time.perf_counter() - started},
        "latency_b1_ms": latency,
        "mac_fraction": fractions,
        "speedup_b1": speedups,
        "realisation_efficiency": efficiency,
        "batch": int(batch.shape[0]),
        "throughput_samples_per_s": throughput,
        "speedup_batch": {name: throughput[name] / best_dense(throughput, higher_is_better=True) for name in fractions},
        "energy": energy,
        "fallback_calibration": {variant: asdict(table) for variant, table in calibrations.items()},
        "targets": {"cpu_batch1_speedup_at_least_2x": best >= MIN_SPEEDUP},
        "target_notes": {
            "cpu_batch1_speedup_at_least_2x": f"faster dense (as trained, or with channels-last weights) / fastest "
            f"coupled compact variant latency at batch 1 >= {MIN_SPEEDUP}, same threads, median of repeats, "
            "generator included"
        },
    }


def _energy(
    models: dict[str, torch.nn.Module],
    inputs: list[torch.Tensor],
    batch: torch.Tensor,
    meter: EnergyMeter | str | None,
    settings: RetimeSettings,
) -> dict[str, Any]:
    if meter is None:
        return dict(NOT_REQUESTED)
    found, reason = resolve_meter(meter, batch.device)
    if found is None:
        return unavailable(reason)
    try:
        return energy_per_sample(models, inputs, batch, found, dense_names=DENSE_BASELINES,
                                 window_s=settings.energy_window_s)  # fmt: skip
    finally:
        if found is not meter:  # a meter this re-timing opened
            found.close()
