"""The quickstart's co-pruning stage: the tiny storms forecaster co-pruned to a MAC target.

Resumable like the other stages: a finished ``model.pt`` is reused, a killed co-pruning resumes
from its last finished epoch (its ``resume.pt``; one killed in its first epoch starts over) and the
test scores are cached in ``eval.json``. It also co-prunes with the data mask alone (``data-only/``,
``dance3d copruning --masks data``). The stage compares the co-pruned model with static pruning at
equal cost: the dense model uniformly narrowed to the co-pruned model's validation MAC fraction and
fine-tuned as long (``static.pt``), scored on the same test samples with a paired test. It times
dense, both co-pruned models in compact execution and the static model side by side, at batch 1
and on one batch of ``throughput_batch`` samples, and for a backbone with a whole-map path (SimVP,
ConvLSTM) compact execution with its measured dense fallback (``fallback.json``: reusable with
``dance3d eval --execution compact --calibration``). Where an energy meter works (the one ``dance3d
show-env`` selects) it measures each timed model's joules per sample at batch 1.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from dance3d.checkpoint import LoadedModel, load_checkpoint, load_model
from dance3d.config import check_range
from dance3d.copruning.baselines import finetune_static, uniform_width_baseline
from dance3d.copruning.benchmark import (
    DENSE_BASELINES,
    batch1_latency_ms,
    batch_throughput,
    best_dense,
    dense_baselines,
    first_samples,
)
from dance3d.copruning.comparison import paired_test
from dance3d.copruning.config import CopruneConfig, CopruneRunConfig, CopruneTrainConfig
from dance3d.copruning.fallback import WholeMapFallback, calibrate_fallback, with_fallback
from dance3d.copruning.figures import calm_and_stormy_figure
from dance3d.copruning.recording import record_mac_fractions
from dance3d.copruning.training import RESUME_STATE, coprune, load_stored_run, on_backbone_of, settings_conflicts
from dance3d.data.registry import build_dataset
from dance3d.errors import ConfigError
from dance3d.forecast.evaluation import evaluate_forecast
from profiling import count_macs
from profiling.energy_stage import energy_rows, open_energy_stage
from profiling.strict_json import dumps_strict

STATIC_MODEL = "static.pt"
"""The stage's static twin (its state dict): the dense model narrowed to the co-pruned model's MAC fraction."""
DATA_ONLY_DIR = "data-only"
"""Where the stage co-prunes with the data mask alone (``dance3d copruning --masks data``)."""
SCORES = "eval.json"
LABELS = {"dense": "dense", "dense_channels_last": "dense with channels-last weights", "compact": "compact execution",
          "data_only": "data mask only", "static": "static widths", "fallback": "with the fallback"}  # fmt: skip
"""How the report names each timed model."""


@dataclass(frozen=True)
class CopruningStageSettings:
    """Co-prune the quickstart's forecaster to ``target_mac_fraction`` in ``epochs`` of fine-tuning (the
    benchmark's generator learning rate), after ``amplify_epochs`` of the amplifying first stage (0: none,
    the default: on the benchmark it did not help by its rule, docs/results.md)."""

    target_mac_fraction: float = 0.35
    epochs: int = 3
    batch_size: int = 16
    generator_lr: float = 1e-2
    tile_size: int = 8
    amplify_epochs: int = 0
    latency_samples: int = 8
    latency_repeats: int = 5
    throughput_batch: int = 32
    energy_window_s: float = 2.0  # per model, where an energy meter works (and for the idle power)

    def __post_init__(self) -> None:
        for name in ("latency_samples", "latency_repeats", "throughput_batch"):
            check_range(f"copruning.{name}", getattr(self, name), low=1)
        check_range("copruning.energy_window_s", self.energy_window_s, low=0, low_open=True)
        check_range("copruning.amplify_epochs", self.amplify_epochs, low=0)
        self.run_config()  # bad values are refused when the quickstart starts, not when it reaches this stage

    def run_config(self, *, model_mask: bool = True) -> CopruneRunConfig:
        """The co-pruning run: both masks, or the data mask alone (``model_mask=False``, ``--masks data``)."""
        return CopruneRunConfig(
            copruning=CopruneConfig(target_mac_fraction=self.target_mac_fraction, tile_size=self.tile_size,
                                    model_mask=model_mask),
            train=CopruneTrainConfig(epochs=self.epochs, batch_size=self.batch_size, generator_lr=self.generator_lr,
                                     amplify_epochs=self.amplify_epochs, progress=False),
        )  # fmt: skip


@dataclass
class CopruningStageResult:
    heading: str
    text: str
    table: pd.DataFrame
    figures: list[Path]


def _scores(model, test_set) -> dict:  # noqa: ANN001
    with record_mac_fractions(model) as fractions:
        scores = evaluate_forecast(model, test_set, progress=False)
    out = scores.to_dict(with_records=False)
    out["mac_fractions"] = fractions or [1.0] * scores.num_samples
    out["calm_fractions"] = [r["calm_fraction"] for r in scores.records]
    out["mses"] = [r["mse"] for r in scores.records]
    return out


def run_copruning_stage(
    settings: CopruningStageSettings, dense_checkpoint: Path, out_dir: Path
) -> CopruningStageResult:
    """Co-prune (or reuse) the forecaster at ``dense_checkpoint``, with both masks and with the data mask alone;
    score them, their static twin, dense and persistence on the test split."""
    out_dir = Path(out_dir)
    checkpoint, cached, data_dir = out_dir / "model.pt", out_dir / SCORES, out_dir / DATA_ONLY_DIR
    _coprune_or_reuse(settings.run_config(), dense_checkpoint, out_dir, derived=(SCORES, STATIC_MODEL))
    _coprune_or_reuse(settings.run_config(model_mask=False), dense_checkpoint, data_dir, derived=(SCORES,))
    copruned, dense, data_only = load_model(checkpoint), load_model(dense_checkpoint), load_model(data_dir / "model.pt")
    test_set = build_dataset(copruned.data, "test", classes=copruned.classes)
    scores = json.loads(cached.read_text()) if cached.is_file() else {}
    if "mses" not in scores.get("copruned", {}):  # not cached, or cached by a version without per-sample errors
        scores = {"dense": _scores(dense.model.eval(), test_set), "copruned": _scores(copruned.model.eval(), test_set)}
    static = _static_model(dense.model.eval(), copruned, test_set, settings, out_dir)
    if "static" not in scores:
        scores["static"] = _scores(static.model, test_set)
        cached.write_text(dumps_strict(scores))
    data_cache = data_dir / SCORES
    if data_cache.is_file():
        data_scores = json.loads(data_cache.read_text())
    else:
        data_scores = _scores(data_only.model.eval(), test_set)
        data_cache.write_text(dumps_strict(data_scores))
    calm = dict(enumerate(scores["copruned"]["calm_fractions"]))
    figure = calm_and_stormy_figure(copruned.model, test_set, calm, out_dir / "copruning_masks.png")
    rows = {
        "dense": _row(scores["dense"]["model"], 1.0),
        "co-pruned": _row(scores["copruned"]["model"], _mean(scores["copruned"]["mac_fractions"])),
        "co-pruned, data mask only": _row(data_scores["model"], _mean(data_scores["mac_fractions"])),
        "static widths": _row(scores["static"]["model"], static.mac_fraction),
        "persistence": _row(scores["dense"]["persistence"], 0.0),
    }
    table = pd.DataFrame(rows).T
    models = {"dense": dense.model.eval(), "copruned": copruned.model.eval(), "static": static.model,
              "data_only": data_only.model.eval()}  # fmt: skip
    latency = _timing(models, test_set, settings, out_dir)
    data_row = rows["co-pruned, data mask only"]
    fraction, dense_mse = rows["co-pruned"]["MAC fraction"], rows["dense"]["MSE"]
    amplified = amplification_sentence(copruned.checkpoint["copruning"].get("amplification"))
    text = (
        f"`dance3d copruning --checkpoint {dense_checkpoint} --target-mac-fraction {settings.target_mac_fraction:g} "
        f"--epochs {settings.epochs}"
        + (f" --amplify-epochs {settings.amplify_epochs}" if settings.amplify_epochs else "")
        + "`: one importance map per sample drives a tile mask and a channel mask "
        f"(docs/copruning.md). {amplified}On {scores['copruned']['num_samples']} test samples the co-pruned forecaster "
        f"computes **{fraction:.3f}** of the dense MACs on average (generator included) at an MSE of "
        f"{rows['co-pruned']['MSE']:.1f} (dense {dense_mse:.1f}, persistence {rows['persistence']['MSE']:.1f}; "
        "VIL levels). Skipped tiles (a Transformer's dropped tokens) forecast persistence. The figure shows `S`, "
        "the kept tiles and the forecast of the calmest and the stormiest test sample. "
        f"{_against_static(scores, static)} With the data mask alone (`--masks data`, `{DATA_ONLY_DIR}/`; on storms "
        f"the benchmark's data-only masks forecast better than both masks, docs/results.md) it computes "
        f"{data_row['MAC fraction']:.3f} of the MACs at an MSE of {data_row['MSE']:.1f}. Tiny settings: a smoke test "
        "of the pipeline, not a "
        f"benchmark (that is `benchmarks/dyna_forecast.py`). {latency}"
    )
    return CopruningStageResult("Co-pruning: the storms forecaster", text, table, [figure])


def amplification_sentence(record: dict | None) -> str:
    """What the amplifying first stage did, from its record (empty where it did not run), ending in a space."""
    if not record:
        return ""
    before, after = record["cv_before"], record["cv_after"]
    changes = ", ".join(f"{key} {before[key]:.3f} -> {after[key]:.3f}" for key in before)
    return (
        f"First the forecaster was fine-tuned {len(record['history'])} epoch(s) to amplify the variability of the "
        f"units the masks gate (validation CVs {changes}; validation MSE after it {record['val_mse_after']:.4g}, "
        "normalised; `amplify.json`). "
    )


@dataclass
class StaticModel:
    """The dense forecaster uniformly narrowed to the co-pruned model's validation MAC fraction, fine-tuned."""

    model: nn.Module
    widths: dict[str, int]
    mac_fraction: float  # its counted MACs over the dense model's


def _static_model(dense: nn.Module, copruned: LoadedModel, test_set, settings: CopruningStageSettings,  # noqa: ANN001
                  out_dir: Path) -> StaticModel:  # fmt: skip
    """Narrow ``dense`` to the co-pruned model's validation MAC fraction and fine-tune it with the co-pruning's
    epochs, batch size and backbone lr (or reload it from ``static.pt``)."""
    sample = test_set[0]["inputs"][None]
    dense_macs = count_macs(dense, sample).macs
    target_macs = copruned.checkpoint["copruning"]["val_mac_fraction"] * dense_macs
    baseline = uniform_width_baseline(dense, sample, target_macs)
    saved = out_dir / STATIC_MODEL
    if saved.is_file():
        baseline.model.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
    else:
        train_set = build_dataset(copruned.data, "train", classes=copruned.classes)
        train = settings.run_config().train
        finetune_static(baseline.model, train_set, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
                        seed=train.seed)  # fmt: skip
        partial = saved.with_suffix(".pt.tmp")
        torch.save(baseline.model.state_dict(), partial)
        os.replace(partial, saved)
    return StaticModel(baseline.model.eval(), baseline.widths, baseline.macs / dense_macs)


def _against_static(scores: dict, static: StaticModel) -> str:
    """One sentence: the co-pruned model against static widths at the same MACs, with a paired test."""
    test = paired_test(np.asarray(scores["copruned"]["mses"]), np.asarray(scores["static"]["mses"]),
                       names=("co-pruned", "static"))  # fmt: skip
    widths = ", ".join(f"{name} {width}" for name, width in static.widths.items())
    significant = test.wilcoxon_p < 0.05
    verdict = "lower" if test.reference_ahead else "higher" if significant and test.mean_difference < 0 else "level"
    mse = scores["static"]["model"]["mse"]
    return (
        f"Static pruning at the same cost (the dense model uniformly narrowed, widths {widths}: "
        f"{static.mac_fraction:.3f} of the MACs, fine-tuned as long) reaches an MSE of {mse:.1f}: the co-pruned "
        f"model's per-sample error is {verdict} (mean difference {test.mean_difference:+.1f}, Wilcoxon p "
        f"{test.wilcoxon_p:.2g})."
    )


def _coprune_or_reuse(
    run: CopruneRunConfig, dense_checkpoint: Path, out_dir: Path, *, derived: tuple[str, ...]
) -> None:
    """Co-prune into ``out_dir`` unless it holds a finished model of the same settings (a killed run resumes); a
    finished model of other settings is refused; a new model drops the ``derived`` files an earlier one left."""
    if (out_dir / "model.pt").is_file():
        stored, run = load_stored_run(out_dir), on_backbone_of(load_checkpoint(dense_checkpoint), run)
        conflicts = settings_conflicts(stored, run, stored.started_from)  # the folder may have moved since
        if conflicts:
            raise ConfigError(
                f"{out_dir / 'model.pt'} was co-pruned with other settings ({'; '.join(conflicts)}); "
                f"remove {out_dir} to co-prune again, or choose another --out"
            )
        return
    coprune(run, dense_checkpoint, out_dir, resume=(out_dir / RESUME_STATE).is_file())
    for name in derived:
        (out_dir / name).unlink(missing_ok=True)


def _timing(loaded: dict[str, nn.Module], test_set, settings: CopruningStageSettings, out_dir: Path) -> str:  # noqa: ANN001
    """Dense (as trained and channels-last), both co-pruned models in compact execution, static widths and, for a
    backbone with a whole-map path, compact with its measured fallback: batch-1 latency and the throughput of one
    batch, each timed side by side; two sentences."""
    inputs = first_samples(test_set, settings.latency_samples)
    model = loaded["copruned"]
    compact = copy.deepcopy(model).set_mode("compact")
    models = {**dense_baselines(loaded["dense"]), "compact": compact, "static": loaded["static"],
              "data_only": copy.deepcopy(loaded["data_only"]).set_mode("compact")}  # fmt: skip
    table = None
    if isinstance(model, WholeMapFallback):
        table = calibrate_fallback(model, inputs[0])
        table.save(out_dir / "fallback.json")
        models["fallback"] = with_fallback(compact, table)
    ms = batch1_latency_ms(models, inputs, repeats=settings.latency_repeats)
    dense_ms = best_dense(ms)
    text = (
        f"At batch 1 on {len(inputs)} test samples, timed side by side: dense {ms['dense']:.2f} ms (with "
        f"channels-last weights {ms['dense_channels_last']:.2f} ms; speed-ups are over the faster), compact "
        f"execution {ms['compact']:.2f} ms ({dense_ms / ms['compact']:.2f}x dense's speed), data mask only "
        f"{ms['data_only']:.2f} ms ({dense_ms / ms['data_only']:.2f}x), static widths "
        f"{ms['static']:.2f} ms ({dense_ms / ms['static']:.2f}x)"
    )
    if table is not None:
        break_even = table.break_even_tiles
        where = "never" if break_even is None else f"at {break_even} of {table.tiles} kept tiles or more"
        text += (
            f", and with the dense fallback measured here (whole map {where}; `fallback.json`) "
            f"{ms['fallback']:.2f} ms ({dense_ms / ms['fallback']:.2f}x)"
        )
    return f"{text}. {_throughput(models, test_set, settings)} {_energy(models, inputs[0], settings)}"


def _throughput(models: dict[str, nn.Module], test_set, settings: CopruningStageSettings) -> str:  # noqa: ANN001
    batch = torch.cat(first_samples(test_set, settings.throughput_batch))
    rate = batch_throughput(models, batch, repeats=settings.latency_repeats)
    dense = best_dense(rate, higher_is_better=True)
    parts = [f"{LABELS[name]} {value:.0f} ({value / dense:.2f}x)" for name, value in rate.items()
             if name not in DENSE_BASELINES]  # fmt: skip
    return (
        f"One batch of {len(batch)} test samples as one call, in samples per second: dense {rate['dense']:.0f} "
        f"(channels-last {rate['dense_channels_last']:.0f}), {', '.join(parts)}."
    )


def _energy(models: dict[str, nn.Module], sample: torch.Tensor, settings: CopruningStageSettings) -> str:
    """Joules per sample at batch 1 with the meter ``show-env`` selects; one sentence (why not, without one)."""
    stage = open_energy_stage("cpu")
    try:
        rows = energy_rows(models, sample[0], stage, window_s=settings.energy_window_s,
                           idle_s=settings.energy_window_s)  # fmt: skip
    finally:
        stage.close()
    if not rows:
        return "Energy per sample: not measured, no energy meter works here (the Energy section above says why)."
    mj = {row["model"]: row["energy_per_clip_mj"] for row in rows}
    dense = best_dense(mj)
    parts = [f"{LABELS[name]} {value:.2f} mJ" + ("" if name in DENSE_BASELINES else f" ({dense / value:.2f}x less)")
             for name, value in mj.items()]  # fmt: skip
    return (
        f"Energy per sample at batch 1, measured with `{stage.meter.name}` (idle {rows[0]['idle_power_w']:.1f} W "
        f"included; savings over the less costly dense layout): {', '.join(parts)}."
    )


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def _row(scores: dict, mac_fraction: float) -> dict[str, float]:
    return {"MSE": scores["mse"], "CSI >= 74": scores["categorical"]["74"]["csi"], "MAC fraction": mac_fraction}
