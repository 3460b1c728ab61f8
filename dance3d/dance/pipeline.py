"""DANCE end to end: dense checkpoint -> AVA -> AAP -> evaluation, with one set of defaults.

:class:`DanceSettings` holds every stage's settings; its defaults are the ones the DANCE benchmark
reports (``benchmarks/dance_moving_digits.py``). :data:`PRESETS` names the settings that really
differ: ``quickstart`` (the ``dance3d quickstart`` stage: one AVA epoch, 6 joint AAP epochs at a
MAC target of 0.40, 128 measuring clips) and ``smoke`` (the benchmark's ``--quick`` run: one epoch
per phase; its numbers mean nothing). ``dance3d ava`` / ``dance3d aap`` (``--preset``), the
quickstart and the benchmark all run the stages below.

Stages work in memory (:func:`ava_stage`, :func:`aap_stage`) or on files (:func:`run_ava`,
:func:`run_aap`: checkpoint in, checkpoint out; :func:`run_dance`: both, then the test split).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dance3d.checkpoint import Checkpoint, load_model, save_checkpoint
from dance3d.config import load_config, to_dict
from dance3d.dance.aap import AapSettings, teacher_logits, train_aap
from dance3d.dance.ava import AvaResult, AvaSettings, amplify
from dance3d.dance.common import accuracy, clip_shape, start_stage, write_jsonl
from dance3d.dance.data import ClipCache, cached_split
from dance3d.dance.device_cost import UNITS, load_for, mean_table_cost
from dance3d.dance.plots import plot_variability
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model
from dance3d.dynamic.budget import mean_mac_fraction
from dance3d.dynamic.checkpoint import KIND, dense_state_dict, dynamic_spec
from dance3d.errors import ConfigError
from dance3d.evaluation import evaluate
from profiling.strict_json import dumps_strict

ClipShape = tuple[int, int, int]  # frames, height, width


@dataclass(frozen=True)
class DanceSettings:
    """The settings of both DANCE stages and of the dynamic model AAP trains."""

    ava: AvaSettings = field(default_factory=AvaSettings)
    aap: AapSettings = field(default_factory=AapSettings)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)


@dataclass(frozen=True)
class DanceRunConfig(DanceSettings):
    """:class:`DanceSettings` and the data the stages read (a checkpoint's own, by default)."""

    data: DataConfig = field(default_factory=DataConfig)


PRESETS: dict[str, DanceSettings] = {
    "default": DanceSettings(),
    "quickstart": DanceSettings(
        ava=AvaSettings(epochs=1, measure_clips=128),
        aap=AapSettings(joint_epochs=6, target_mac_fraction=0.40, measure_clips=128),
    ),
    "smoke": DanceSettings(
        ava=AvaSettings(epochs=1),
        aap=AapSettings(epochs=1, joint_epochs=1, target_mac_fraction=0.35, joint_lr=1e-4),
    ),
}


def preset(name: str) -> DanceSettings:
    """The named preset of :data:`PRESETS`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown DANCE preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def load_run_config(
    *, preset_name: str = "default", data: dict[str, Any], path: str | Path | None = None, overrides: list[str]
) -> DanceRunConfig:
    """Preset < ``data`` (a checkpoint's) < config file < ``--set`` overrides."""
    base = {**to_dict(preset(preset_name)), "data": data}
    return load_config(DanceRunConfig, path=path, overrides=overrides, base=base)


# -- in memory --------------------------------------------------------------------------------


def ava_stage(
    dense: torch.nn.Module, train: ClipCache, val: ClipCache, settings: AvaSettings, *, shape: ClipShape, log=print
) -> tuple[torch.nn.Module, AvaResult, DynamicModel]:
    """AVA on a copy of ``dense`` (clips of ``shape`` (T, H, W)): the amplified dense model, the stage's
    measurements on ``val`` and the dynamic model it was trained as."""
    model = convert_model(copy.deepcopy(dense), clip_shape=shape, config=DynamicConfig(tile_size=settings.tile_size))
    result = amplify(model, train, val, settings, log=log)
    amplified = copy.deepcopy(dense)
    amplified.load_state_dict(dense_state_dict(model))
    return amplified.eval(), result, model


@dataclass
class AapOutcome:
    model: DynamicModel
    history: list[dict[str, Any]]
    train_s: float


def aap_stage(
    backbone: torch.nn.Module,
    train: ClipCache,
    settings: AapSettings,
    *,
    shape: ClipShape,
    dynamic: DynamicConfig,
    teacher: torch.Tensor | None = None,
    log=print,
) -> AapOutcome:
    """AAP on a copy of ``backbone``: a dynamic model with a trained controller.

    ``teacher``: the dense logits of every train clip (:func:`dense_teacher`), computed here when not
    given and ``settings.distill_weight`` > 0.
    """
    torch.manual_seed(settings.seed)  # the controller's initial weights depend on the seed only
    model = convert_model(copy.deepcopy(backbone), clip_shape=shape, config=dynamic)
    if teacher is None and settings.distill_weight > 0:
        teacher = teacher_logits(model, train)
    started = time.perf_counter()
    history = train_aap(model, train, settings, teacher=teacher, log=log)
    return AapOutcome(model, history, time.perf_counter() - started)


def dense_teacher(backbone: torch.nn.Module, train: ClipCache, *, shape: ClipShape) -> torch.Tensor:
    """The logits of ``backbone`` (every unit kept) on the train clips, AAP's distillation target."""
    return teacher_logits(convert_model(copy.deepcopy(backbone), clip_shape=shape), train)


# -- on files ---------------------------------------------------------------------------------


@dataclass
class AvaRun:
    checkpoint_path: Path
    result: AvaResult


@dataclass
class AapRun:
    checkpoint_path: Path
    history: list[dict[str, Any]]
    val_top1: float
    val_mac_fraction: float
    val_table_cost: float | None = None  # mean per-clip ms (J) the cost table predicts, for a latency (energy) cost


def run_ava(config: DanceRunConfig, checkpoint_path: str | Path, out_dir: str | Path) -> AvaRun:
    """Stage 1 on files: a dense (or MDP-pruned) checkpoint fine-tuned by AVA, saved as a dense checkpoint."""
    settings = config.ava
    checkpoint, dense, out_dir, classes = start_stage(
        config, checkpoint_path, out_dir, threads=settings.threads, seed=settings.seed
    )
    train = cached_split(config.data, "train", classes=classes, limit=settings.num_train_clips)
    val = cached_split(config.data, "val", classes=classes, limit=settings.measure_clips)
    _, result, model = ava_stage(dense, train, val, settings, shape=clip_shape(config.data), log=tqdm.write)
    run = AvaRun(out_dir / "model.pt", result)
    ava = {"settings": to_dict(settings), **result.summary()}
    record = Checkpoint.create(  # the input's kind: AVA fine-tunes the same network
        checkpoint.kind, checkpoint.model, dense_state_dict(model),
        data=config.data, classes=classes, config=config, history=result.history, ava=ava,
    )  # fmt: skip
    save_checkpoint(record, run.checkpoint_path)
    write_jsonl(out_dir / "metrics.jsonl", result.history)
    plot_variability(result.variability_before, result.variability_after, out_dir / "ava_variability.png")
    return run


def run_aap(config: DanceRunConfig, checkpoint_path: str | Path, out_dir: str | Path) -> AapRun:
    """Stage 2 on files: a dense (AVA, MDP-pruned) checkpoint -> a dynamic one with a trained controller."""
    settings = config.aap
    checkpoint, dense, out_dir, classes = start_stage(
        config, checkpoint_path, out_dir, threads=settings.threads, seed=settings.seed
    )
    train = cached_split(config.data, "train", classes=classes, limit=settings.num_train_clips)
    val = cached_split(config.data, "val", classes=classes, limit=settings.measure_clips)
    outcome = aap_stage(dense, train, settings, shape=clip_shape(config.data), dynamic=config.dynamic, log=tqdm.write)
    model = outcome.model
    val_mac_fraction = mean_mac_fraction(model.eval(), val.clips.float(), batch_size=64)
    run = AapRun(out_dir / "model.pt", outcome.history, accuracy(model, val), val_mac_fraction)
    tqdm.write(f"val top-1 {run.val_top1:.4f}  mean MAC fraction {run.val_mac_fraction:.4f}")
    spec = dynamic_spec(model, checkpoint.model, backbone_kind=checkpoint.kind)
    aap = {"val_top1": run.val_top1, "val_mac_fraction": run.val_mac_fraction}
    if settings.cost != "macs":
        table = load_for(settings.cost_table, model, cost=settings.cost)
        run.val_table_cost = mean_table_cost(model, val.clips.float(), table, cost=settings.cost, batch_size=64)
        aap[f"val_table_{settings.cost}_{UNITS[settings.cost].lower()}"] = run.val_table_cost
        tqdm.write(f"val mean table {settings.cost} {run.val_table_cost:.4g} {UNITS[settings.cost]} per clip")
    record = Checkpoint.create(
        KIND, spec, model.state_dict(),
        data=config.data, classes=classes, config=config, history=outcome.history, aap=aap,
    )  # fmt: skip
    save_checkpoint(record, run.checkpoint_path)
    write_jsonl(out_dir / "metrics.jsonl", outcome.history)
    return run


@dataclass
class DanceRun:
    ava_checkpoint: Path
    aap_checkpoint: Path
    test: dict[str, Any]  # ``EvalResult.to_dict()`` of the AAP model on the test split


def run_dance(config: DanceRunConfig, dense_checkpoint: str | Path, out_dir: str | Path) -> DanceRun:
    """``<out_dir>/ava`` (stage 1), ``<out_dir>/aap`` (stage 2), then the AAP model on the test split
    (``<out_dir>/aap/test_eval.json``). A stage whose ``model.pt`` exists is reused, so a killed run resumes."""
    out_dir = Path(out_dir)
    ava_checkpoint, aap_checkpoint = out_dir / "ava" / "model.pt", out_dir / "aap" / "model.pt"
    if not ava_checkpoint.is_file():
        run_ava(config, dense_checkpoint, ava_checkpoint.parent)
    if not aap_checkpoint.is_file():
        run_aap(config, ava_checkpoint, aap_checkpoint.parent)
    evaluated = aap_checkpoint.parent / "test_eval.json"
    if not evaluated.is_file():
        loaded = load_model(aap_checkpoint)
        test = build_dataset(config.data, "test", classes=loaded.classes)
        evaluated.write_text(dumps_strict(evaluate(loaded.model, test, classes=loaded.classes).to_dict()))
    return DanceRun(ava_checkpoint, aap_checkpoint, json.loads(evaluated.read_text()))
