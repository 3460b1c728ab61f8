"""Static + dynamic, stacked: MDP at a latency target, then DANCE on the smaller model with the device objective.

One pipeline (``dance3d stack``) over stages that each write into the run directory and are reused when
their output exists, so a killed run resumes:

1. ``mdp/``: MDP prunes the dense checkpoint under ``mdp.target_latency`` on the latency table's device;
2. ``cost_table.json``: the pruned model's gated blocks timed at every keep level with the same runtime
   (device, threads, timing) as the MDP table (:mod:`dance3d.dance.device_cost_measure`);
3. ``ava/``: AVA on the pruned model;
4. ``aap/``: AAP with ``aap.cost`` = ``stack.cost`` (latency, or energy with a meter) charged by that table,
   toward ``stack.dance_target`` (a fraction of the pruned model's dense table cost, or ``<value>ms`` /
   ``<value>J`` per clip), then the test split;

and ``stack.json`` sums it up: MDP's budget and latency, the table's dense and target cost, the AAP model's
accuracy, MAC fraction, table cost and, when this machine has the table's device, its batch-1 compact
latency measured beside the table's prediction for the same clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import load_model
from dance3d.config import save_config, to_dict
from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.dance.data import cached_split
from dance3d.dance.device_cost import UNITS, BlockCostTable, mean_table_cost
from dance3d.dance.device_cost_measure import build_cost_table, dynamic_model_of
from dance3d.dance.latency import batch1_latency_ms, compact_forward
from dance3d.dance.pipeline import DanceRunConfig, run_aap, run_ava
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.dynamic import DynamicConfig
from dance3d.errors import ConfigError
from dance3d.evaluation import evaluate
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.lut_measure import runtime_threads
from dance3d.mdp.pipeline import MdpRunConfig, MdpSettings, run_mdp
from dance3d.mdp.targets import budget_ms
from dance3d.training.trainer import TrainConfig
from profiling import collect_env
from profiling.energy import resolve_meter
from profiling.strict_json import dumps_strict

STACK_COSTS = ("latency", "energy")


@dataclass(frozen=True)
class StackSettings:
    """The dynamic stage's device objective and target, and the clips its latency is checked on."""

    cost: str = "latency"  # AAP's cost: latency, or energy (the cost table then needs a working meter)
    dance_target: str = "0.7"  # fraction of the pruned model's dense table cost, or "<value>ms" / "<value>J"
    latency_clips: int = 16  # test clips the final model's compact latency is measured on (0: not measured)
    seed: int = 0  # of the random masks the cost table times

    def __post_init__(self) -> None:
        if self.cost not in STACK_COSTS:
            raise ValueError(f"cost must be latency or energy, got {self.cost!r}")
        if self.latency_clips < 0:
            raise ValueError("latency_clips must be >= 0")


@dataclass(frozen=True)
class StackedRunConfig:
    """MDP's settings and fine-tune, DANCE's stages and dynamic model, the data, and the stack's own settings."""

    stack: StackSettings = field(default_factory=StackSettings)
    mdp: MdpSettings = field(default_factory=MdpSettings)
    train: TrainConfig = field(default_factory=TrainConfig)  # MDP's fine-tune
    ava: AvaSettings = field(default_factory=AvaSettings)
    aap: AapSettings = field(default_factory=AapSettings)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)
    data: DataConfig = field(default_factory=DataConfig)


def dance_target(target: str, dense: float, *, cost: str) -> float:
    """The per-clip target in ms (J): a fraction in (0, 1] of ``dense``, or an absolute value with its unit."""
    text = str(target).strip()
    if cost == "latency":
        return budget_ms(text, dense)
    if text.lower().endswith("j"):
        try:
            value = float(text[:-1])
        except ValueError:
            value = float("nan")
        if not value > 0:
            raise ConfigError(f"stack.dance_target {target!r} must be a positive number of joules, e.g. 0.05J")
        return value
    return budget_ms(text, dense)  # a fraction: the same rules as a latency fraction


def _cost_table(config: StackedRunConfig, pruned: Path, lut: LatencyTable, path: Path) -> BlockCostTable:
    if path.is_file():
        return BlockCostTable.load(path)
    model, spec = dynamic_model_of(pruned, dynamic=config.dynamic)
    meter, why = None, "not requested"
    if config.stack.cost == "energy":
        meter, why = resolve_meter("auto", lut.runtime.device)
    table = build_cost_table(
        model, spec, runtime=replace(lut.runtime, precision="fp32"), meter=meter, energy_status=why or "ok",
        seed=config.stack.seed, progress=config.mdp.progress, env=collect_env(),
    )  # fmt: skip
    table.save(path)
    return table


def check_energy_meter(config: StackedRunConfig, lut: LatencyTable) -> None:
    """Before any work: an energy objective needs a meter that works on the table's device."""
    if config.stack.cost == "energy":
        meter, why = resolve_meter("auto", lut.runtime.device)
        if meter is None:
            raise ConfigError(f"stack.cost=energy needs an energy meter on {lut.runtime.device}: {why}")


def _has_device(table: BlockCostTable) -> bool:
    return torch.device(table.runtime.device).type != "cuda" or torch.cuda.is_available()


def _latency_check(config: StackedRunConfig, aap_checkpoint: Path, table: BlockCostTable) -> dict[str, Any]:
    """Batch-1 compact latency of the AAP model on the first test clips against the table's mean prediction."""
    count = config.stack.latency_clips
    if not count or not _has_device(table):
        return {}
    loaded = load_model(aap_checkpoint)
    model = loaded.model.to(table.runtime.device)
    clips = cached_split(config.data, "test", classes=loaded.classes, limit=count)
    with runtime_threads(table.runtime):
        measured = batch1_latency_ms({"dance": compact_forward(model)}, clips, count=count)["dance"]
        predicted = mean_table_cost(model, clips.clips.float().to(table.runtime.device), table, batch_size=1)
    return {
        "latency_clips": count,
        "measured_compact_ms": measured,
        "predicted_ms": predicted,
        "prediction_error_pct": 100.0 * (predicted - measured) / measured,
    }


def run_stacked(
    config: StackedRunConfig,
    dense_checkpoint: str | Path,
    latency_table: str | Path,
    out_dir: str | Path,
    *,
    mdp_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The four stages (module docstring) in ``out_dir``; returns (and writes) ``stack.json``. ``mdp_dir``: a
    finished MDP run of ``dense_checkpoint`` on ``latency_table`` to stack on instead of running stage 1."""
    out = Path(out_dir)
    lut = LatencyTable.load(latency_table)
    check_energy_meter(config, lut)
    mdp_dir = out / "mdp" if mdp_dir is None else Path(mdp_dir)
    mdp_ckpt = mdp_dir / "model.pt"
    if mdp_dir != out / "mdp" and not (mdp_ckpt.is_file() and (mdp_dir / "solution.json").is_file()):
        raise ConfigError(f"{mdp_dir} holds no finished MDP run (model.pt and solution.json)")
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "stack.yaml")
    if not mdp_ckpt.is_file():
        mdp_config = MdpRunConfig(mdp=config.mdp, data=config.data, train=config.train)
        run_mdp(mdp_config, dense_checkpoint, latency_table, mdp_dir)
    solution = json.loads((mdp_dir / "solution.json").read_text())
    table_path = out / "cost_table.json"
    table = _cost_table(config, mdp_ckpt, lut, table_path)
    cost = config.stack.cost
    target = dance_target(config.stack.dance_target, table.dense_cost(cost), cost=cost)
    dance = DanceRunConfig(ava=config.ava, aap=config.aap, dynamic=config.dynamic, data=config.data)
    ava_ckpt, aap_ckpt = out / "ava" / "model.pt", out / "aap" / "model.pt"
    if not ava_ckpt.is_file():
        run_ava(dance, mdp_ckpt, ava_ckpt.parent)
    if not aap_ckpt.is_file():
        unit = UNITS[cost].lower()
        aap = replace(config.aap, cost=cost, cost_table=str(table_path), **{f"target_{cost}_{unit}": target})
        run_aap(replace(dance, aap=aap), ava_ckpt, aap_ckpt.parent)
    loaded = load_model(aap_ckpt)
    test = evaluate(loaded.model, build_dataset(config.data, "test", classes=loaded.classes), classes=loaded.classes)
    summary = {
        "mdp": {
            key: solution.get(key)
            for key in ("target_latency", "requested_budget_ms", "predicted_ms", "measured_ms", "removed_blocks")
        },  # fmt: skip
        "cost": cost,
        "dense_table_cost": table.dense_cost(cost),
        "target_cost": target,
        "unit": UNITS[cost],
        "aap": loaded.checkpoint.extras.get("aap", {}),
        "test": test.to_dict(with_records=False),
        "latency": _latency_check(config, aap_ckpt, table),
        "checkpoints": {"mdp": str(mdp_ckpt), "ava": str(ava_ckpt), "aap": str(aap_ckpt)},
        "config": to_dict(config),
    }
    (out / "stack.json").write_text(dumps_strict(summary))
    return summary
