"""Co-prune a trained dense forecaster to a MAC target: fine-tune the mask generator (and the backbone).

Each step runs the co-pruned model in simulate mode with soft masks (straight-through), and
minimises ``MSE(forecast, truth) + sparsity_weight * |mean MAC fraction - target|
+ distill_weight * MSE(forecast, dense forecast)``. The MAC term is two-sided (:func:`mac_penalty`;
``train.mac_penalty=ceiling`` gives the first design's hinge ``max(0, mean - target)``):
a tile the data mask skips is skipped at every stage, so the forecast loss's straight-through
gradient on it is near zero, and a model that overshoots into skipping everything (persistence)
gets no pull back from the forecast loss; the MAC term's gradient is the one that brings it back.

With ``train.amplify_epochs`` > 0 the backbone is first fine-tuned dense to amplify the variability of
the units the masks gate (:mod:`dance3d.copruning.amplify`; its epoch rows and CV terms before and
after are in ``amplify.json`` and the checkpoint). Each epoch is validated with hard masks; the run
writes ``config.yaml``, ``metrics.jsonl`` (one row per epoch), ``steps.jsonl`` (one row per step:
forecast MSE, MAC penalty, mean MAC / position / channel fraction, mean ``S``) and ``model.pt``
(kind ``copruned``). After every epoch it saves ``resume.pt`` (atomically): the weights, the
optimizer, the history, the random state and how much of ``steps.jsonl`` is final, so a killed run
continues from its last finished epoch (``resume=True``) as the uninterrupted run would have.
``resume.pt`` is removed once ``model.pt`` is written.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from dance3d import run_lock
from dance3d.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from dance3d.config import config_differences, from_dict, save_config, to_dict
from dance3d.copruning.amplify import amplify
from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.checkpoint import KIND, build_copruned_network, copruned_spec
from dance3d.copruning.config import CopruneRunConfig, check_backbone
from dance3d.copruning.wrappers import coprune_model
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError
from dance3d.forecast.checkpoint import build_forecast_model, frames
from dance3d.forecast.task import KIND as FORECAST
from dance3d.progress import progress_bar


@dataclass
class CopruneResult:
    """Where the co-pruned model was saved and how it scores on the validation split (normalised MSE)."""

    checkpoint_path: Path
    val_mse: float
    val_persistence_mse: float
    dense_val_mse: float
    val_mac_fraction: float
    history: list[dict[str, Any]]
    amplification: dict[str, Any] | None = None  # the amplifying stage's record, where it ran
    already_finished: bool = False  # a resumed run that had done all its epochs: nothing was run or written


RESUME_STATE = "resume.pt"
"""The run directory's resumable state after the last finished epoch (a ``copruned`` checkpoint with
``optimizer``, ``epochs_done``, ``rng_state`` and ``steps_bytes`` entries)."""

RESUMABLE_CHANGES = frozenset({"train.progress"})
"""Config keys a resumed run may change: how it reports, not what it computes."""


@dataclass(frozen=True)
class StoredRun:
    """The co-pruning run saved in a run directory: finished (``model.pt``) or after an epoch (``resume.pt``)."""

    path: Path
    record: Checkpoint
    finished: bool

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.record.config or {})

    @property
    def started_from(self) -> str:
        return self.record["copruning"]["started_from"]


def load_stored_run(out_dir: str | Path) -> StoredRun:
    """The run to resume in ``out_dir``; a clear error when there is none or it is not a co-pruning run."""
    out_dir = Path(out_dir)
    for name, finished in (("model.pt", True), (RESUME_STATE, False)):
        path = out_dir / name
        if path.is_file():
            record = load_checkpoint(path)
            if record.kind != KIND or (not finished and "optimizer" not in record):
                raise ConfigError(f"--resume: {path} is not a co-pruning run's checkpoint (kind {record.kind!r})")
            return StoredRun(path, record, finished)
    raise ConfigError(
        f"--resume: {out_dir} holds no co-pruning run to resume (no model.pt or {RESUME_STATE}: "
        "no epoch had finished); run without --resume to start it"
    )


def settings_conflicts(stored: StoredRun, run: CopruneRunConfig, started_from: str) -> list[str]:
    """``"key: stored -> requested"`` for each setting (and the start checkpoint) ``run`` changes from the stored
    run's, apart from ``RESUMABLE_CHANGES``; settings added since the run was saved count as their defaults."""
    saved = to_dict(from_dict(CopruneRunConfig, stored.config))
    conflicts = [d for d in config_differences(saved, to_dict(run)) if d.split(":")[0] not in RESUMABLE_CHANGES]
    if stored.started_from != started_from:
        conflicts.append(f"--checkpoint: {stored.started_from!r} -> {started_from!r}")
    return conflicts


def check_resume_config(stored: StoredRun, run: CopruneRunConfig, started_from: str) -> None:
    """Refuse to resume with settings or a start checkpoint that contradict the run's own (naming both values)."""
    conflicts = settings_conflicts(stored, run, started_from)
    if conflicts:
        raise ConfigError(
            f"--resume: {stored.path} was started with other settings ({'; '.join(conflicts)}); "
            "resume without those flags to continue it as it was started"
        )


@dataclass
class SplitScores:
    mse: float
    persistence_mse: float
    mac_fraction: float  # mean over samples (co-pruned models), 1.0 for a dense one


@torch.no_grad()
def score(model: nn.Module, dataset: Dataset, *, batch_size: int, device: torch.device) -> SplitScores:
    """Normalised MSE of ``model`` and of persistence, and the mean MAC fraction, over ``dataset``."""
    model.eval()
    totals = {"mse": 0.0, "persistence": 0.0, "fraction": 0.0}
    count = 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        prediction = model(inputs)
        totals["mse"] += float(((prediction - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum())
        totals["persistence"] += float(((inputs[:, -1:] - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum())
        fraction = getattr(model, "last_mac_fraction", None)
        totals["fraction"] += float(fraction.sum()) if fraction is not None else len(inputs)
        count += len(inputs)
    return SplitScores(totals["mse"] / count, totals["persistence"] / count, totals["fraction"] / count)


def start_from(dense_path: str | Path, run: CopruneRunConfig) -> tuple[Checkpoint, nn.Module, CopruneRunConfig]:
    """The dense forecaster to co-prune and the run config with its backbone; refuses anything else."""
    checkpoint = load_checkpoint(dense_path)
    if checkpoint.kind != FORECAST:
        raise ConfigError(
            f"co-pruning starts from a trained forecaster (kind 'forecast'); "
            f"{dense_path} is a {checkpoint.kind!r} checkpoint"
        )
    check_backbone(checkpoint.model["name"])
    run = on_backbone_of(checkpoint, run)
    dense = build_forecast_model(checkpoint)
    coprune_model(dense, run.copruning)  # refuses a backbone it cannot wrap (a Transformer's patch size) now
    return checkpoint, dense, run


def on_backbone_of(checkpoint: Checkpoint, run: CopruneRunConfig) -> CopruneRunConfig:
    """``run`` with the backbone of the dense ``checkpoint`` it co-prunes: a run's backbone is always its start's."""
    return replace(run, copruning=replace(run.copruning, backbone=checkpoint.model["name"]))


def _data(checkpoint: Checkpoint) -> DataConfig:
    data = from_dict(DataConfig, checkpoint.data)
    t_in, t_out = frames(checkpoint)
    return replace(data, forecast=replace(data.forecast, t_in=t_in, t_out=t_out))


def coprune(
    run: CopruneRunConfig,
    dense_path: str | Path,
    out_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    resume: bool = False,
) -> CopruneResult:
    """Co-prune the forecaster at ``dense_path``; writes ``out_dir/model.pt``.

    An ``out_dir`` that holds a run (``model.pt`` or ``resume.pt``) is refused unless ``resume``:
    then the run continues from its last finished epoch with the settings it was started with
    (``run`` may differ only in ``RESUMABLE_CHANGES``); a finished run is left as it is.
    """
    out_dir = Path(out_dir)
    checkpoint, dense, run = start_from(dense_path, run)
    started_from = str(checkpoint_path(dense_path))
    if not resume:
        for name in ("model.pt", RESUME_STATE):
            if (out_dir / name).exists():
                raise ConfigError(
                    f"{out_dir / name} exists; pass --resume to continue that run or choose another --out"
                )
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = run_lock.acquire(out_dir)
    try:
        stored = load_stored_run(out_dir) if resume else None
        if stored is not None:
            check_resume_config(stored, run, started_from)
            if stored.finished:
                (out_dir / RESUME_STATE).unlink(missing_ok=True)  # left by a kill between the two writes
                return _result(stored.record, stored.path, already_finished=True)
        state = None if stored is None else stored.record
        return _coprune(run, checkpoint, dense, out_dir, torch.device(device), started_from, state=state)
    finally:
        run_lock.release(lock)


def _coprune(
    run: CopruneRunConfig,
    checkpoint: Checkpoint,
    dense: nn.Module,
    out_dir: Path,
    device: torch.device,
    started_from: str,
    *,
    state: Checkpoint | None,
) -> CopruneResult:
    tc, cc = run.train, run.copruning
    if state is None:
        save_config(run, out_dir / "config.yaml")
    data = _data(checkpoint)
    classes = tuple(checkpoint.classes)
    train_set, val_set = build_dataset(data, "train", classes=classes), build_dataset(data, "val", classes=classes)
    torch.manual_seed(tc.seed)
    dense = dense.to(device).eval()
    model = coprune_model(copy.deepcopy(dense), cc).to(device)
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(tc.train_backbone)
    groups = [{"params": model.generator.parameters(), "lr": tc.generator_lr}]
    if tc.train_backbone:
        groups.append({"params": model.backbone.parameters(), "lr": tc.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    dense_val = score(dense, val_set, batch_size=tc.batch_size, device=device)
    history: list[dict[str, Any]] = []
    steps_path = out_dir / "steps.jsonl"
    amplification = None
    if state is not None:
        amplification = state["copruning"].get("amplification")
        model.load_state_dict(state.state_dict)
        optimizer.load_state_dict(state["optimizer"])
        history = list(state.history)
        _cut_steps_log(steps_path, state["steps_bytes"])
        _set_rng_state(state["rng_state"], device)
    elif tc.amplify_epochs:
        amplification = _amplify(model, train_set, val_set, run, dense_val.mse, device, out_dir)

    def record(**resume: Any) -> Checkpoint:
        last = history[-1]
        return Checkpoint.create(
            KIND,
            copruned_spec(checkpoint.model, cc),
            {k: v.detach().cpu() for k, v in model.state_dict().items()},
            data=data,
            classes=classes,
            config=run,
            history=history,
            copruning={"dense_val_mse": dense_val.mse, "val_mse": last["val_mse"],
                       "val_mac_fraction": last["val_mac_fraction"], "started_from": started_from,
                       "amplification": amplification},
            **resume,
        )  # fmt: skip

    metrics, steps = (out_dir / "metrics.jsonl").open("w"), steps_path.open("a" if state is not None else "w")
    try:
        metrics.write("".join(json.dumps(row) + "\n" for row in history))
        metrics.flush()
        for epoch in range(len(history), tc.epochs):
            row = _epoch(model, dense, train_set, optimizer, run, device=device, epoch=epoch, steps_log=steps)
            val = score(model, val_set, batch_size=tc.batch_size, device=device)
            row.update(val_mse=val.mse, val_persistence_mse=val.persistence_mse, val_mac_fraction=val.mac_fraction)
            history.append(row)
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            resume_state = record(optimizer=optimizer.state_dict(), epochs_done=epoch + 1,
                                  rng_state=_rng_state(device), steps_bytes=steps_path.stat().st_size)  # fmt: skip
            save_checkpoint(resume_state, out_dir / RESUME_STATE)
    finally:
        metrics.close()
        steps.close()
    final = record()
    path = save_checkpoint(final, out_dir / "model.pt")
    (out_dir / RESUME_STATE).unlink(missing_ok=True)
    return _result(final, path)


def _result(record: Checkpoint, path: Path, *, already_finished: bool = False) -> CopruneResult:
    last, scores = record.history[-1], record["copruning"]
    return CopruneResult(path, scores["val_mse"], last["val_persistence_mse"], scores["dense_val_mse"],
                         scores["val_mac_fraction"], list(record.history), scores.get("amplification"),
                         already_finished)  # fmt: skip


def _amplify(
    model: CoprunedForecaster,
    train_set: Dataset,
    val_set: Dataset,
    run: CopruneRunConfig,
    dense_val_mse: float,
    device: torch.device,
    out_dir: Path,
) -> dict[str, Any]:
    """The amplifying stage on ``model``'s backbone (in place); its record, also written to ``amplify.json``."""
    result = amplify(model.backbone, train_set, val_set, train=run.train, grid_for=model.grid_for,
                     dense_val_mse=dense_val_mse, device=device)  # fmt: skip
    record = result.summary()
    record["val_mse_after"] = score(model.backbone, val_set, batch_size=run.train.batch_size, device=device).mse
    (out_dir / "amplify.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _cut_steps_log(path: Path, size_bytes: int) -> None:
    """Cut ``steps.jsonl`` back to the rows of the finished epochs (a killed epoch's rows are dropped)."""
    found = path.stat().st_size if path.is_file() else 0
    if found < size_bytes:
        raise ConfigError(
            f"--resume: {path} holds {found} bytes, fewer than the {size_bytes} its finished epochs wrote; "
            "it was changed after the run saved its state"
        )
    os.truncate(path, size_bytes)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Torch's global random state (and the GPU's), saved so that a resumed run continues it."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def mac_penalty(mac_fraction: torch.Tensor, target: float, *, kind: str = "target") -> torch.Tensor:
    """``|mean - target|`` of the batch's MAC fractions (``kind="target"``), or only the excess
    ``max(0, mean - target)`` (``"ceiling"``)."""
    excess = mac_fraction.mean() - target
    return excess.abs() if kind == "target" else F.relu(excess)


def _epoch(
    model: CoprunedForecaster,
    dense: nn.Module,
    train_set: Dataset,
    optimizer: torch.optim.Optimizer,
    run: CopruneRunConfig,
    *,
    device: torch.device,
    epoch: int,
    steps_log: TextIO,
) -> dict[str, Any]:
    tc, target = run.train, run.copruning.target_mac_fraction
    model.train().set_mode("simulate")
    generator = torch.Generator().manual_seed(tc.seed + epoch)
    loader = DataLoader(train_set, batch_size=tc.batch_size, shuffle=True, generator=generator)
    sums = {"loss": 0.0, "mse": 0.0, "fraction": 0.0}
    steps = 0
    for batch in progress_bar(loader, desc=f"coprune {epoch + 1}/{tc.epochs}", unit="batch", disable=not tc.progress):
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        prediction = model(inputs)
        mse = F.mse_loss(prediction, targets)
        fraction = model.last_mac_fraction.mean()
        penalty = mac_penalty(model.last_mac_fraction, target, kind=tc.mac_penalty)
        loss = mse + tc.sparsity_weight * penalty
        if tc.distill_weight > 0:
            with torch.no_grad():
                teacher = dense(inputs)
            loss = loss + tc.distill_weight * F.mse_loss(prediction, teacher)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        steps_log.write(json.dumps(_step_row(model, epoch=epoch, step=steps, mse=mse, penalty=penalty)) + "\n")
        optimizer.step()
        sums["loss"] += float(loss.detach())
        sums["mse"] += float(mse.detach())
        sums["fraction"] += float(fraction.detach())
        steps += 1
    steps_log.flush()
    return {"epoch": epoch + 1, "train_loss": sums["loss"] / steps, "train_mse": sums["mse"] / steps,
            "train_mac_fraction": sums["fraction"] / steps}  # fmt: skip


@torch.no_grad()
def _step_row(
    model: CoprunedForecaster, *, epoch: int, step: int, mse: torch.Tensor, penalty: torch.Tensor
) -> dict[str, Any]:
    """One training step's record: losses, the masks' kept shares, mean ``S`` and the generator's gradient norm."""
    decisions = model.last_decisions
    channels = decisions.channel_fractions()
    grads = [p.grad.norm() ** 2 for p in model.generator.parameters() if p.grad is not None]
    return {"epoch": epoch + 1, "step": step, "train_mse": float(mse), "mac_penalty": float(penalty),
            "mac_fraction": float(model.last_mac_fraction.mean()),
            "position_fraction": float(decisions.position_fraction().mean()),
            "channel_fraction": None if channels is None else float(channels.mean()),
            "mean_s": float(model.last_scores.mean()),
            "generator_grad_norm": float(torch.stack(grads).sum().sqrt()) if grads else 0.0}  # fmt: skip


__all__ = [
    "RESUME_STATE",
    "CopruneResult",
    "StoredRun",
    "build_copruned_network",
    "coprune",
    "load_stored_run",
    "mac_penalty",
    "on_backbone_of",
    "settings_conflicts",
    "score",
]
