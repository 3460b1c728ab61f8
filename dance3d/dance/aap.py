"""Stage 2, AAP: train the stem-fed controller that decides per clip what each gated block skips.

The backbone is frozen (BN statistics too); the controller learns through hard decisions with a
straight-through surrogate gradient. Loss per batch::

    CE(logits, labels) + distill_weight * T^2 * KL(dense teacher || student at temperature T)
        + mac_penalty * |mean MAC fraction - target_mac_fraction|         (target set)
        + mac_penalty * mean MAC fraction                                   (no target)
        + channel_logit_penalty * mean squared channel logit of the controller

The MAC fraction is the accounting of :mod:`dance3d.dynamic.accounting` (controller included),
differentiable through the surrogate masks. ``joint_epochs`` > 0 adds a short joint fine-tune:
backbone at ``joint_lr`` (BN statistics stay frozen), controller still at ``lr``. ``settle_epochs``
> 0 then fine-tunes the backbone past its stem (gated blocks, head) at ``joint_lr`` with controller
and stem frozen, so it adapts to decisions that no longer move, as a static model fine-tunes to its
fixed shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dance3d.checkpoint import Checkpoint, save_checkpoint
from dance3d.dance.common import accuracy, batches, clip_shape, start_stage, write_jsonl
from dance3d.dance.data import ClipCache, cached_split
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model, set_execution_mode
from dance3d.dynamic.budget import mean_mac_fraction
from dance3d.dynamic.checkpoint import KIND, dynamic_spec


@dataclass(frozen=True)
class AapSettings:
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-2
    target_mac_fraction: float | None = 0.35
    mac_penalty: float = 4.0
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    channel_logit_penalty: float = 0.0  # > 0 keeps channel logits near 0, where a clip can move a count
    joint_epochs: int = 0
    joint_lr: float = 1e-4
    settle_epochs: int = 0  # then the backbone past the stem alone (controller and stem frozen)
    num_train_clips: int | None = None  # None: the whole train split
    measure_clips: int = 256  # val clips for the reported accuracy and MACs
    seed: int = 0
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.joint_epochs < 0 or self.settle_epochs < 0:
            raise ValueError("epochs and batch_size must be >= 1, joint_epochs and settle_epochs >= 0")
        if self.target_mac_fraction is not None and not 0.0 < self.target_mac_fraction <= 1.0:
            raise ValueError("target_mac_fraction must be in (0, 1] or null")
        if self.mac_penalty < 0 or self.distill_weight < 0 or not self.distill_temperature > 0:
            raise ValueError("need mac_penalty >= 0, distill_weight >= 0, distill_temperature > 0")
        if not self.channel_logit_penalty >= 0:
            raise ValueError(f"channel_logit_penalty must be >= 0, got {self.channel_logit_penalty}")
        if not self.lr > 0 or not self.joint_lr > 0:
            raise ValueError("lr and joint_lr must be > 0")


@dataclass(frozen=True)
class AapRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    aap: AapSettings = field(default_factory=AapSettings)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)


@dataclass
class AapResult:
    checkpoint_path: Path
    history: list[dict[str, Any]]
    val_top1: float
    val_mac_fraction: float


def mac_term(mac_fraction: torch.Tensor, settings: AapSettings) -> torch.Tensor:
    """The compute trade-off term of the loss, from per-clip MAC fractions (B,)."""
    mean = mac_fraction.mean()
    if settings.target_mac_fraction is None:
        return settings.mac_penalty * mean
    return settings.mac_penalty * (mean - settings.target_mac_fraction).abs()


def channel_logit_magnitude(model: DynamicModel) -> torch.Tensor:
    """Mean over gated blocks of the mean squared channel logit of the last train-mode forward.

    Without it the channel logits drift far from 0 during training, beyond the reach of any clip
    (``dance3d.dynamic.decision_margins``), and AAP learns one channel count per block.
    """
    return torch.stack([(logits**2).mean() for logits in model.last_controller_output.channel_logits]).mean()


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    return (
        F.kl_div(
            F.log_softmax(student / temperature, 1),
            F.log_softmax(teacher / temperature, 1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )


@torch.no_grad()
def teacher_logits(model: DynamicModel, cache: ClipCache, *, batch_size: int = 64) -> torch.Tensor:
    """Dense-model logits of every clip (all units kept)."""
    model.eval()
    out = []
    for start in range(0, len(cache), batch_size):
        clips, _ = cache.batch(torch.arange(start, min(start + batch_size, len(cache))))
        out.append(model(clips, decisions=model.full_decisions(len(clips))))
    return torch.cat(out)


def _epoch(
    model: DynamicModel,
    train: ClipCache,
    teacher: torch.Tensor | None,
    optimizer: torch.optim.Optimizer,
    settings: AapSettings,
    *,
    epoch: int,
    desc: str,
) -> dict[str, float]:
    sums = {"loss": 0.0, "ce": 0.0, "mac_fraction": 0.0, "correct": 0.0, "count": 0.0}
    order = list(batches(len(train), settings.batch_size, seed=settings.seed, epoch=epoch))
    bar = tqdm(order, desc=desc, unit="batch", disable=not settings.progress)
    for indices in bar:
        clips, labels = train.batch(indices)
        logits = model(clips)
        fraction = model.last_mac_fraction
        ce = F.cross_entropy(logits, labels)
        loss = ce + mac_term(fraction, settings)
        if settings.channel_logit_penalty > 0:
            loss = loss + settings.channel_logit_penalty * channel_logit_magnitude(model)
        if teacher is not None and settings.distill_weight > 0:
            loss = loss + settings.distill_weight * distillation(logits, teacher[indices], settings.distill_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(labels)
        sums["loss"] += loss.item() * n
        sums["ce"] += ce.item() * n
        sums["mac_fraction"] += fraction.mean().item() * n
        sums["correct"] += float((logits.argmax(1) == labels).sum())
        sums["count"] += n
        bar.set_postfix(ce=f"{sums['ce'] / sums['count']:.3f}", macs=f"{sums['mac_fraction'] / sums['count']:.3f}")
    count = sums.pop("count")
    row = {k: v / count for k, v in sums.items()}
    row["train_top1"] = row.pop("correct")
    return row


def train_aap(
    model: DynamicModel, train: ClipCache, settings: AapSettings, *, teacher: torch.Tensor | None = None, log=print
) -> list[dict[str, Any]]:
    """Train the controller (backbone frozen), then optionally a short joint fine-tune and a settle phase
    (:class:`AapSettings`); returns epoch rows."""
    torch.manual_seed(settings.seed)
    model.eval()  # BN statistics stay frozen; the execution mode, not nn.Module.train, enables the STE
    set_execution_mode(model, "train")
    history = []
    controller = {"params": list(model.controller.parameters()), "lr": settings.lr}
    phases = [("controller", settings.epochs, [controller])]
    if settings.joint_epochs:
        backbone = {"params": list(model.backbone.parameters()), "lr": settings.joint_lr}
        phases.append(("joint", settings.joint_epochs, [controller, backbone]))
    if settings.settle_epochs:
        stem = {id(p) for p in model.backbone.get_submodule(model.stem_name).parameters()}
        blocks = {"params": [p for p in model.backbone.parameters() if id(p) not in stem], "lr": settings.joint_lr}
        phases.append(("settle", settings.settle_epochs, [blocks]))
    epoch_index = 0
    try:
        for phase, epochs, groups in phases:
            trained = {id(p) for group in groups for p in group["params"]}
            for p in model.parameters():
                p.requires_grad_(id(p) in trained)
            optimizer = torch.optim.Adam(groups)
            for epoch in range(epochs):
                started = time.perf_counter()
                desc = f"aap {phase} {epoch + 1}/{epochs}"
                row = _epoch(model, train, teacher, optimizer, settings, epoch=epoch_index, desc=desc)
                row = {"epoch": epoch_index + 1, "phase": phase, **row, "epoch_s": time.perf_counter() - started}
                history.append(row)
                epoch_index += 1
                log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    finally:
        set_execution_mode(model, "simulate")
        for p in model.parameters():
            p.requires_grad_(True)
    return history


def run_aap(config: AapRunConfig, checkpoint_path: str | Path, out_dir: str | Path) -> AapResult:
    """Dense (or AVA) checkpoint -> dynamic model with a trained controller, saved as kind ``dynamic``."""
    settings = config.aap
    checkpoint, dense, out_dir, classes = start_stage(
        config, checkpoint_path, out_dir, threads=settings.threads, seed=settings.seed
    )
    model = convert_model(dense, clip_shape=clip_shape(config.data), config=config.dynamic)
    train = cached_split(config.data, "train", classes=classes, limit=settings.num_train_clips)
    val = cached_split(config.data, "val", classes=classes, limit=settings.measure_clips)
    teacher = teacher_logits(model, train) if settings.distill_weight > 0 else None
    history = train_aap(model, train, settings, teacher=teacher, log=tqdm.write)
    val_mac_fraction = mean_mac_fraction(model.eval(), val.clips.float(), batch_size=64)
    result = AapResult(out_dir / "model.pt", history, accuracy(model, val), val_mac_fraction)
    tqdm.write(f"val top-1 {result.val_top1:.4f}  mean MAC fraction {result.val_mac_fraction:.4f}")
    spec = dynamic_spec(model, checkpoint.model, backbone_kind=checkpoint.kind)
    aap = {"val_top1": result.val_top1, "val_mac_fraction": result.val_mac_fraction}
    record = Checkpoint.create(
        KIND, spec, model.state_dict(), data=config.data, classes=classes, config=config, history=history, aap=aap
    )
    save_checkpoint(record, result.checkpoint_path)
    write_jsonl(out_dir / "metrics.jsonl", history)
    return result
