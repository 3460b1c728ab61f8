"""``dance3d mdp`` end to end: dense checkpoint + latency table -> importance -> MILP -> smaller model -> fine-tune.

Writes into the output directory: ``solution.json`` (widths, removed blocks, predicted and measured
latency, solve time and gap), ``mdp.yaml`` (the resolved config), and the trainer's ``model.pt``
(kind ``pruned``), ``config.yaml`` and ``metrics.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dance3d.checkpoint import DENSE, Checkpoint, load_checkpoint, load_network, save_checkpoint
from dance3d.config import save_config, to_dict
from dance3d.data.registry import DataConfig, build_dataset, dataset_classes
from dance3d.errors import ConfigError
from dance3d.mdp.checkpoint import KIND, pruned_spec
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import taylor_importance
from dance3d.mdp.lut import LatencyPredictor, LatencyTable
from dance3d.mdp.lut_measure import measure_model_ms
from dance3d.mdp.materialize import materialize
from dance3d.mdp.problem import build_problem
from dance3d.mdp.refine import solve_measured
from dance3d.mdp.solver import Solution, SolverConfig, solve
from dance3d.mdp.targets import budget_ms
from dance3d.training.trainer import RunConfig, StartModel, TrainConfig, train
from profiling.strict_json import dumps_strict


@dataclass(frozen=True)
class MdpSettings:
    target_latency: str = "0.5"  # fraction of the table's dense latency, or "<value>ms"
    width_step: int = 0  # 0: the latency table's grid; else multiples of it inside the grid's range
    remove_blocks: bool = True
    importance_batches: int = 8
    importance_batch_size: int = 16
    time_limit_s: float = 60.0
    mip_rel_gap: float = 1e-4
    finetune: bool = True
    measure: bool = True  # time the pruned model here when this machine has the table's device
    refine_rounds: int = 3  # with measuring: re-solve under a tighter budget while the solution measures over it
    refine_tolerance_pct: float = 2.0  # measured latency may exceed the budget by this much (timing noise)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.refine_rounds < 0 or not self.refine_tolerance_pct > 0:
            raise ValueError("mdp.refine_rounds must be >= 0 and mdp.refine_tolerance_pct > 0")


@dataclass(frozen=True)
class MdpRunConfig:
    mdp: MdpSettings = field(default_factory=MdpSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)  # the fine-tune


@dataclass
class MdpResult:
    checkpoint_path: Path
    solution: Solution
    measured_ms: float | None
    history: list[dict[str, Any]]
    latency_model: LatencyPredictor  # the table's selected model (predicted_ms and the budget use it)
    refinement_rounds: list[dict[str, Any]] = field(default_factory=list)  # empty: not measured here


def require_dense(checkpoint: Checkpoint, path: str | Path) -> None:
    """Clear error unless ``checkpoint`` holds an unpruned zoo model (MDP starts from one)."""
    if checkpoint.kind == KIND:  # e.g. 'dance3d ava' output of a pruned model
        raise ConfigError(f"{path} holds an MDP-pruned model; MDP starts from a dense one")
    if checkpoint.kind != DENSE:
        raise ConfigError(f"{path} is a {checkpoint.kind!r} checkpoint; MDP starts from a dense one")


def config_base(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Defaults of a run from a dense checkpoint: its data; a short, gentle fine-tune at its batch size."""
    trained = checkpoint.get("config", {}).get("train", {})
    finetune = {"model": checkpoint["model"]["name"], "epochs": 2, "lr": 1e-3, "warmup_steps": 10, "num_workers": 0}
    finetune["batch_size"] = trained.get("batch_size", 16)
    return {"data": checkpoint["data"], "train": finetune}


def _importance_batches(config: MdpRunConfig) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    dataset = build_dataset(config.data, "train")
    loader = DataLoader(
        dataset,
        batch_size=config.mdp.importance_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.mdp.seed),
    )
    for i, batch in enumerate(loader):
        if i >= config.mdp.importance_batches:
            return
        yield batch["clip"], batch["label"]


def _has_table_device(table: LatencyTable) -> bool:
    return torch.device(table.runtime.device).type != "cuda" or torch.cuda.is_available()


def run_mdp(
    config: MdpRunConfig, checkpoint_path: str | Path, table_path: str | Path, out_dir: str | Path
) -> MdpResult:
    """Solve, materialise, fine-tune and save a ``pruned`` checkpoint in ``out_dir``."""
    out = Path(out_dir)
    if (out / "model.pt").exists():
        raise ConfigError(f"{out / 'model.pt'} exists; choose another --out")
    checkpoint = load_checkpoint(checkpoint_path)
    require_dense(checkpoint, checkpoint_path)
    table = LatencyTable.load(table_path)
    budget = budget_ms(config.mdp.target_latency, table.dense_latency_ms)
    dense = load_network(checkpoint, source=checkpoint_path)
    data = config.data
    structure = extract_structure(dense, (3, data.num_frames, data.height, data.width))
    table.check_matches(structure, checkpoint["model"])
    torch.manual_seed(config.mdp.seed)
    importance = taylor_importance(structure, _importance_batches(config), progress=config.mdp.progress)
    settings = config.mdp
    solver = SolverConfig(settings.time_limit_s, settings.mip_rel_gap, settings.remove_blocks)
    options = {"budget_ms": budget, "width_step": settings.width_step, "remove_blocks": settings.remove_blocks}

    def prune(plan) -> torch.nn.Module:
        return materialize(structure, plan, keep=importance.keep_indices(plan.widths))

    rounds: list[dict[str, Any]] = []
    if settings.measure and _has_table_device(table):
        refined = solve_measured(
            structure, table, importance,
            measure=lambda plan: measure_model_ms(prune(plan), table.clip_shape, table.runtime),
            max_rounds=max(1, settings.refine_rounds), tolerance_pct=settings.refine_tolerance_pct, solver=solver,
            **options,
        )  # fmt: skip
        solution, measured, rounds = refined.solution, refined.measured_ms, refined.rounds
    else:
        solution = solve(build_problem(structure, table, importance, **options), solver)
        measured = None
    pruned = prune(solution.plan)
    spec = pruned_spec(checkpoint["model"], structure.clip_shape, solution.plan)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "mdp.yaml")
    report = {
        **solution.to_dict(),
        "target_latency": config.mdp.target_latency,
        "requested_budget_ms": budget,  # budget_ms above: the last round's (tightened) budget
        "dense_latency_ms": table.dense_latency_ms,
        "measured_ms": measured,
        "refinement_rounds": rounds,  # solve -> measure -> tighten the budget, see dance3d.mdp.refine
        "latency_table": str(table_path),
        "latency_model": table.selected.to_dict(),  # what predicted_ms and the budget constraint used
        "runtime": to_dict(table.runtime),
        "block_importance": importance.blocks,
    }
    (out / "solution.json").write_text(dumps_strict(report))
    if config.mdp.finetune:
        result = train(RunConfig(data=data, train=config.train), out, start=StartModel(pruned, KIND, spec))
        return MdpResult(result.checkpoint_path, solution, measured, result.history, table.selected, rounds)
    classes = dataset_classes(build_dataset(data, "train"))
    record = Checkpoint.create(
        KIND, spec, pruned.state_dict(), data=data, classes=classes, config=config, epochs_done=0
    )
    path = save_checkpoint(record, out / "model.pt")
    return MdpResult(path, solution, measured, [], table.selected, rounds)
