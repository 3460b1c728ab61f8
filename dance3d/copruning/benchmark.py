"""The co-pruning benchmark (``benchmarks/dyna_forecast.py``): coupled masks against single masks and
static baselines at matched MACs, on one seed and one synthetic source (``storms``, ``traffic``, ``weather``).

Steps: train (or load) a dense SimVP, spatio-temporal Transformer or ConvLSTM on the source;
co-prune it with coupled masks, data-only and model-only masks (same target, same fine-tuning
budget); build the static baselines at the coupled model's validation MAC fraction (uniform width
pruning: L1 channels for SimVP, attention and MLP widths for the Transformer, cell hidden widths for
the ConvLSTM; a fixed centred crop of tiles, a random tile drop) and fine-tune them as long; score
everything on the test split with per-sample records; paired tests against the coupled model; the
calm-fraction Spearman; figures; CPU latency at batch 1 of dense vs co-pruned compact execution; the
targets from these numbers.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from dance3d.benchmark_results import ResultDir
from dance3d.checkpoint import load_checkpoint, load_model
from dance3d.config import check_range, from_dict, to_dict
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.baselines import StaticTiles, finetune_static, static_tiles_model, uniform_width_baseline
from dance3d.copruning.comparison import TargetThresholds, dyna_targets, paired_test, spearman
from dance3d.copruning.config import CopruneConfig, CopruneRunConfig, CopruneTrainConfig, check_backbone
from dance3d.copruning.figures import calm_and_stormy_figure, mac_mse_figure
from dance3d.copruning.recording import record_mac_fractions
from dance3d.copruning.training import coprune
from dance3d.data.forecast.config import ForecastDataConfig
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError
from dance3d.forecast.evaluation import evaluate_forecast
from dance3d.forecast.task import KIND as FORECAST
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling import collect_env, count_macs
from profiling.latency import measure_interleaved, synchronize

BENCHMARK = "dyna_forecast"
SINGLE_MASKS = {"data_only": {"data_mask": True, "model_mask": False},
                "model_only": {"data_mask": False, "model_mask": True}}  # fmt: skip
STATIC = ("uniform_channels", "static_crop", "random_drop")
SOURCES = ("storms", "traffic", "weather")
CSI_LEVELS = {"storms": "74"}  # the event level (VIL) of the CSI target; other sources have none
CSI_LEVEL = CSI_LEVELS["storms"]
SHIPPED_GRIDS_LEFT_OUT = (
    "the shipped real grids give too few windows for 1024 / 128 / 256 samples "
    "(the longest, grid:iris-air-temp, 161 / 29 / 29)"
)


@dataclass(frozen=True)
class DynaSettings:
    """One run of the benchmark (one seed). ``lr`` / ``generator_lr`` / ``finetune_epochs`` are the
    fine-tuning budget every pruned model gets; ``dense_*`` train the dense model."""

    backbone: str = "simvp-tiny"
    height: int = 64
    width: int = 64
    num_train: int = 1024
    num_val: int = 128
    num_test: int = 256
    dense_epochs: int = 8
    dense_lr: float = 3e-3
    finetune_epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-3
    generator_lr: float = 1e-2
    target_mac_fraction: float = 0.35
    tile_size: int = 8
    channel_threshold: float = 0.2  # the masks' channel threshold (CopruneConfig), every co-pruned model
    sparsity_weight: float = 2.0
    mac_penalty: str = "target"  # "ceiling": run 1's hinge
    latency_samples: int = 16
    latency_repeats: int = 7
    seed: int = 0
    source: str = "storms"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"--source {self.source!r}: choose one of {', '.join(SOURCES)}; {SHIPPED_GRIDS_LEFT_OUT}")
        check_backbone(self.backbone)
        check_range("--channel-threshold", self.channel_threshold, low=0, high=1, low_open=True, high_open=True)


QUICK = {"num_train": 48, "num_val": 16, "num_test": 24, "dense_epochs": 1, "finetune_epochs": 1,
         "latency_samples": 3, "latency_repeats": 3}  # fmt: skip
QUICK_BACKBONES = {"simvp-tiny": "simvp-test", "stformer-tiny": "stformer-test", "convlstm-tiny": "convlstm-test"}


def quick_settings(settings: DynaSettings) -> DynaSettings:
    """The smoke-run version of ``settings``: the backbone's unit-test size, tiny splits, one epoch each."""
    backbone = QUICK_BACKBONES.get(settings.backbone, settings.backbone)
    return replace(settings, **QUICK, backbone=backbone)


def data_config(settings: DynaSettings) -> DataConfig:
    """The run's data: ``settings.source`` at ``height`` x ``width``, its own frame counts and channels."""
    forecast = ForecastDataConfig(height=settings.height, width=settings.width, num_train=settings.num_train,
                                  num_val=settings.num_val, num_test=settings.num_test)  # fmt: skip
    return DataConfig(source=settings.source, seed=settings.seed, forecast=forecast)


def result_tag(tag: str | None, source: str) -> str:
    """The result tag of a run: ``tag``, or by default ``default`` on storms and the source's name on
    the others. A tag that could be mistaken for another source's results is refused."""
    if tag is None:
        return "default" if source == "storms" else source
    others = [name for name in SOURCES if name not in (source, "storms")]
    if source != "storms" and not (tag == source or tag.startswith(f"{source}-")):
        raise ConfigError(f"--tag {tag!r}: {source} results take tags '{source}' or '{source}-...', apart from storms'")
    if any(tag == name or tag.startswith(f"{name}-") for name in others):
        raise ConfigError(f"--tag {tag!r} names another source's results; {source} runs cannot use it")
    return tag


def csi_level(source: str) -> str | None:
    """The CSI event level of ``source`` for the targets, or ``None`` where it has none."""
    return CSI_LEVELS.get(source)


def mse_unit(variables: tuple[str, ...], units: tuple[str, ...]) -> str:
    """The unit of the physical-unit MSE, mean over ``variables``."""
    if tuple(variables) == ("vil",):
        return "VIL levels^2"
    if len(set(units)) == 1:
        return f"({units[0]})^2"
    return "mean of " + ", ".join(f"{v} ({u})^2" for v, u in zip(variables, units, strict=True))


def train_dense(settings: DynaSettings, out_dir: Path, *, threads: int) -> Path:
    """Train the dense forecaster of the run; returns its checkpoint."""
    config = RunConfig(
        data=data_config(settings),
        train=TrainConfig(model=settings.backbone, epochs=settings.dense_epochs, batch_size=settings.batch_size,
                          lr=settings.dense_lr, weight_decay=0.01, warmup_steps=20, num_workers=0, threads=threads,
                          seed=settings.seed, checkpoint_every_steps=10_000, progress=False),
    )  # fmt: skip
    return Path(train(config, out_dir).checkpoint_path)


def check_dense(path: Path) -> str:
    """The backbone of the dense checkpoint at ``path``; refuses anything but a trained forecaster co-pruning builds."""
    checkpoint = load_checkpoint(path)
    if checkpoint.kind != FORECAST:
        raise ConfigError(f"--dense-checkpoint must be a trained forecaster (kind 'forecast'), got {checkpoint.kind!r}")
    name = checkpoint.model["name"]
    check_backbone(name)
    return name


def evaluate(  # noqa: ANN201
    name: str, model: nn.Module, test_set: Dataset, *, level: str | None, constant_fraction: float | None = None
):
    """(summary row, per-sample records, persistence row) of ``model`` on the test split; the MAC
    fraction per sample is recorded from a co-pruned model, or ``constant_fraction`` for a static one.
    ``csi74`` is the CSI at ``level`` (the source's event level), NaN where the source has none."""
    if isinstance(model, StaticTiles):
        model.reseed()
    if isinstance(model, CoprunedForecaster):
        model.set_mode("simulate")
    with record_mac_fractions(model) as fractions:
        scores = evaluate_forecast(model, test_set, batch_size=16, progress=False)
    if not fractions:
        fractions = [1.0 if constant_fraction is None else constant_fraction] * scores.num_samples
    records = [
        {"method": name, "sample": int(r["index"]), "calm_fraction": float(r["calm_fraction"]),
         "mac_fraction": float(f), "mse": r["mse"], "persistence_mse": r["persistence_mse"]}
        for r, f in zip(scores.records, fractions, strict=True)
    ]  # fmt: skip
    summary = {"mac_fraction": float(np.mean(fractions)), **_scores(scores.model, scores.mse_normalised, level)}
    persistence = {"mac_fraction": 0.0, **_scores(scores.persistence, scores.persistence_mse_normalised, level)}
    return summary, records, persistence


def _scores(scores: dict[str, Any], mse_normalised: float, level: str | None) -> dict[str, Any]:
    csi = scores.get("categorical", {}).get(level, {}).get("csi", float("nan")) if level else float("nan")
    row = {"mse": scores["mse"], "mse_normalised": mse_normalised, "csi74": csi,
           "csi_mean": scores.get("csi_mean", float("nan")),
           "rmse_per_variable": scores["rmse_per_variable"]}  # fmt: skip
    if "lat_weighted_rmse" in scores:
        row["lat_weighted_rmse"] = scores["lat_weighted_rmse"]
    return row


def first_samples(test_set: Dataset, count: int) -> list[torch.Tensor]:
    """The first ``count`` samples' inputs, each a batch of one: what batch-1 latency is timed on."""
    return [test_set[i]["inputs"][None] for i in range(min(count, len(test_set)))]


@torch.inference_mode()
def timed_mac_fraction(model: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Mean MAC fraction of what a co-pruned model computes on ``inputs``, run as they are timed."""
    values = []
    for x in inputs:
        model(x)
        values.append(float(model.last_mac_fraction.mean()))
    return float(np.mean(values))


DENSE_BASELINES = ("dense", "dense_channels_last")


def dense_baselines(dense: nn.Module) -> dict[str, nn.Module]:
    """The dense model as trained and a copy with channels-last weights (oneDNN runs SimVP's convs faster so);
    speed-ups read the faster of the two (:func:`best_dense`)."""
    return {"dense": dense, "dense_channels_last": copy.deepcopy(dense).to(memory_format=torch.channels_last)}


def best_dense(
    figures: Mapping[str, float], *, higher_is_better: bool = False, names: tuple[str, ...] = DENSE_BASELINES
) -> float:
    """The better dense baseline's figure among ``figures``: the lower cost (milliseconds, millijoules) or, with
    ``higher_is_better``, the higher rate (samples per second)."""
    values = [figures[name] for name in names]
    return max(values) if higher_is_better else min(values)


@torch.inference_mode()
def batch1_latency_ms(
    models: dict[str, nn.Module], samples: list[torch.Tensor], *, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median over ``repeats`` of each model's mean milliseconds per sample at batch 1 over ``samples``;
    the models alternate inside every repeat, so they share the machine's state (a GPU is synchronised at
    each model's edges)."""
    times: dict[str, list[float]] = {name: [] for name in models}
    device = samples[0].device
    for round_ in range(warmup + repeats):
        for name, model in models.items():
            synchronize(device)
            started = time.perf_counter()
            for sample in samples:
                model(sample)
            synchronize(device)
            if round_ >= warmup:
                times[name].append((time.perf_counter() - started) * 1000 / len(samples))
    return {name: statistics.median(values) for name, values in times.items()}


def batch_throughput(models: dict[str, nn.Module], batch: torch.Tensor, *, repeats: int) -> dict[str, float]:
    """Samples per second of each model on ``batch`` as one call (median of ``repeats``, models interleaved)."""
    calls = {name: (lambda model=model: model(batch)) for name, model in models.items()}
    times = measure_interleaved(calls, warmup=1, repeats=repeats, device=batch.device)
    return {name: batch.shape[0] / (stats.median_ms / 1000) for name, stats in times.items()}


def coprune_run_config(settings: DynaSettings, backbone: str, *, data_mask: bool, model_mask: bool) -> CopruneRunConfig:
    """The co-pruning run every masked model of the benchmark gets: the same masks' settings and budget."""
    return CopruneRunConfig(
        copruning=CopruneConfig(backbone=backbone, target_mac_fraction=settings.target_mac_fraction,
                                tile_size=settings.tile_size, channel_threshold=settings.channel_threshold,
                                data_mask=data_mask, model_mask=model_mask),
        train=CopruneTrainConfig(epochs=settings.finetune_epochs, batch_size=settings.batch_size, lr=settings.lr,
                                 generator_lr=settings.generator_lr, sparsity_weight=settings.sparsity_weight,
                                 mac_penalty=settings.mac_penalty, seed=settings.seed, progress=False),
    )  # fmt: skip


def _finetune_budget(settings: DynaSettings) -> dict[str, Any]:
    """The co-pruned models' fine-tuning budget, for the static baselines: same epochs, batch size and backbone lr."""
    return {"epochs": settings.finetune_epochs, "batch_size": settings.batch_size, "lr": settings.lr,
            "seed": settings.seed}  # fmt: skip


def run_benchmark(
    settings: DynaSettings,
    *,
    work: Path,
    out: ResultDir,
    quick: bool,
    threads: int,
    dense_checkpoint: Path | None = None,
    thresholds: TargetThresholds | None = None,
    log=print,  # noqa: ANN001
) -> dict[str, Any]:
    """Run every step into ``work`` (checkpoints) and ``out`` (records, figures); returns the result payload."""
    thresholds = thresholds or TargetThresholds()
    started, timings = time.perf_counter(), {}

    def lap(name: str, since: float) -> float:
        timings[name] = time.perf_counter() - since
        log(f"   {name}: {timings[name]:.0f} s")
        return time.perf_counter()

    clock = time.perf_counter()
    if dense_checkpoint is None:
        log("== dense training")
        dense_path = train_dense(settings, work / "dense", threads=threads)
        clock = lap("dense_train", clock)
    else:
        dense_path = Path(dense_checkpoint)
    backbone = check_dense(dense_path)
    settings = replace(settings, backbone=backbone)  # a --dense-checkpoint's backbone is the run's
    dense_ckpt = load_checkpoint(dense_path)
    data = from_dict(DataConfig, dense_ckpt.data)
    if data.source != settings.source:
        raise ConfigError(f"--dense-checkpoint was trained on {data.source!r}, not on --source {settings.source!r}")
    loaded = load_model(dense_path)
    dense = loaded.model.eval()
    train_set = build_dataset(data, "train", classes=loaded.classes)
    test_set = build_dataset(data, "test", classes=loaded.classes)
    sample = test_set[0]["inputs"][None]
    level = csi_level(settings.source)
    shape = {"variables": list(test_set.variables), "channels": int(sample.shape[2]),
             "t_in": int(sample.shape[1]), "t_out": int(test_set[0]["targets"].shape[0]),
             "height": int(sample.shape[3]), "width": int(sample.shape[4])}  # fmt: skip
    dense_macs = int(count_macs(dense, sample).macs_per_clip)

    models: dict[str, nn.Module] = {}
    coprune_results = {}
    for name, masks in {"coupled": {"data_mask": True, "model_mask": True}, **SINGLE_MASKS}.items():
        log(f"== co-pruning: {name}")
        run = coprune_run_config(settings, backbone, **masks)
        result = coprune(run, dense_path, work / name)
        coprune_results[name] = {"val_mse": result.val_mse, "val_mac_fraction": result.val_mac_fraction,
                                 "dense_val_mse": result.dense_val_mse, "history": result.history}  # fmt: skip
        models[name] = load_model(result.checkpoint_path).model.eval()
        clock = lap(f"coprune_{name}", clock)

    match_fraction = coprune_results["coupled"]["val_mac_fraction"]
    log(f"== static baselines at the coupled model's validation MAC fraction {match_fraction:.3f}")
    uniform = uniform_width_baseline(dense, sample, match_fraction * dense_macs)
    models["uniform_channels"] = finetune_static(uniform.model, train_set, **_finetune_budget(settings))
    clock = lap("finetune_uniform_channels", clock)
    tiles = {}
    for name, layout in (("static_crop", "crop"), ("random_drop", "drop")):
        static = static_tiles_model(dense, target_fraction=match_fraction, layout=layout, sample=sample,
                                    tile_size=settings.tile_size, seed=settings.seed)  # fmt: skip
        tiles[name] = static.tiles
        models[name] = finetune_static(static, train_set, **_finetune_budget(settings))
        clock = lap(f"finetune_{name}", clock)

    log("== test split")
    summary, records = {}, []
    summary["dense"], dense_records, summary["persistence"] = evaluate("dense", dense, test_set, level=level)
    records += dense_records
    for name, model in models.items():
        constant = uniform.macs / dense_macs if name == "uniform_channels" else None
        summary[name], rows, _ = evaluate(name, model, test_set, level=level, constant_fraction=constant)
        records += rows
    frame = pd.DataFrame(records)
    frame.to_parquet(out.file("records.parquet"), index=False)
    clock = lap("evaluate", clock)

    per_sample = {name: group.sort_values("sample")["mse"].to_numpy() for name, group in frame.groupby("method")}
    rivals = [*SINGLE_MASKS, *STATIC, "dense"]
    tests = {name: paired_test(per_sample["coupled"], per_sample[name], names=("coupled", name), seed=settings.seed)
             for name in rivals}  # fmt: skip
    coupled_rows = frame[frame.method == "coupled"]
    calm_rho = spearman(coupled_rows["mac_fraction"], coupled_rows["calm_fraction"])

    log("== figures and latency")
    figures = _figures(models["coupled"], test_set, coupled_rows, summary, out, source=settings.source)
    latency_inputs = first_samples(test_set, settings.latency_samples)
    coupled = copy.deepcopy(models["coupled"]).set_mode("compact").eval()
    latency = batch1_latency_ms({**dense_baselines(dense), "coupled_compact": coupled}, latency_inputs,
                                repeats=settings.latency_repeats)  # fmt: skip
    latency_fraction = timed_mac_fraction(coupled, latency_inputs)
    speedup = best_dense(latency) / latency["coupled_compact"]
    lap("latency_and_figures", clock)
    timings["total"] = time.perf_counter() - started

    targets = dyna_targets(summary, tests, static=list(STATIC), single_masks=list(SINGLE_MASKS),
                           calm_spearman=calm_rho, speedup=speedup, thresholds=thresholds)  # fmt: skip
    return {
        "benchmark": BENCHMARK,
        "tag": out.tag,
        "seed": settings.seed,
        "quick": quick,
        "settings": {
            **asdict(settings),
            "threads": torch.get_num_threads(),
            "data": to_dict(data),
            "dense_checkpoint": str(dense_checkpoint) if dense_checkpoint else None,
            "thresholds": asdict(thresholds),
        },  # fmt: skip
        "machine": collect_env(),
        "timings_s": timings,
        "targets": targets,
        "target_notes": _target_notes(thresholds, source=settings.source, dense_csi=summary["dense"]["csi74"]),
        "backbones": {"run": [backbone]},
        "data_shape": shape,
        "csi_level": level,
        "dense_macs": dense_macs,
        "summary": summary,
        "matched": {
            "target_mac_fraction": settings.target_mac_fraction,
            "matched_to_val_mac_fraction": match_fraction,
            "uniform_channels": {**uniform.widths, "macs": uniform.macs, "mac_fraction": uniform.macs / dense_macs},
            "static_tiles": tiles,
        },
        "paired_tests": {name: test.to_dict() for name, test in tests.items()},
        "spearman_mac_vs_calm_fraction": calm_rho,
        "latency_b1_ms": latency,
        "latency_samples_mac_fraction": latency_fraction,
        "speedup_b1": speedup,
        "coprune_runs": coprune_results,
        "figures": [path.name for path in figures],
        "records": "records.parquet",
    }


def _figures(
    model: CoprunedForecaster,
    test_set,  # noqa: ANN001
    coupled_rows: pd.DataFrame,
    summary: dict,
    out: ResultDir,
    *,
    source: str,
) -> list[Path]:
    calm = dict(zip(coupled_rows["sample"].astype(int), coupled_rows["calm_fraction"], strict=True))
    unit = mse_unit(tuple(test_set.variables), tuple(test_set.units))
    return [
        calm_and_stormy_figure(model, test_set, calm, out.file("masks.png"), title=f"{source} test split"),
        mac_mse_figure(
            summary, out.file("mac_vs_mse.png"), title=f"{source} test split: MACs against MSE", mse_unit=unit
        ),
    ]


def _metric_note(t: TargetThresholds, *, source: str, dense_csi: float) -> str:
    """What ``metric_degradation_below_1pct`` checked: MSE, and CSI only where it is defined."""
    mse = f"coupled test MSE <= {1 + t.max_mse_increase} x dense"
    level = csi_level(source)
    if level is None:
        return f"{mse}; MSE only: {source} has no CSI event level, its CSI is undefined (null) and not checked"
    if not dense_csi > 0:
        return f"{mse}; MSE only: dense CSI at VIL {level} is {dense_csi} (no hits), so the CSI part is not checked"
    return f"{mse} and CSI at VIL {level} >= {1 - t.max_csi_drop} x dense"


def _target_notes(t: TargetThresholds, *, source: str, dense_csi: float) -> dict[str, str]:
    return {
        "mac_reduction_at_least_60pct": f"coupled mean test MAC fraction <= {t.max_mac_fraction}",
        "metric_degradation_below_1pct": _metric_note(t, source=source, dense_csi=dense_csi),
        "ahead_of_static_at_matched_macs": "for each static baseline: coupled MAC fraction <= its + "
        f"{t.mac_match_tolerance} and coupled per-sample error lower (Wilcoxon p < 0.05, mean difference > 0)",
        "coupled_ahead_of_single_masks": "the same test against data-only and model-only masks",
        "spearman_calm_fraction_at_least_0.5": f"-Spearman(per-sample MAC fraction, calm fraction) >= "
        f"{t.min_calm_spearman} for the coupled model; calm fraction per sample from the {source} dataset",
        "cpu_batch1_speedup_at_least_2x": f"faster dense (as trained, or with channels-last weights) / coupled "
        f"compact latency at batch 1 >= {t.min_speedup}, same threads, median of repeats",
    }


__all__ = [
    "BENCHMARK",
    "SOURCES",
    "DynaSettings",
    "batch1_latency_ms",
    "csi_level",
    "first_samples",
    "quick_settings",
    "result_tag",
    "run_benchmark",
    "timed_mac_fraction",
]
