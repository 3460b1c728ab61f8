"""Stage 2, AAP: train the stem-fed controller that decides per clip what each gated block skips.

The backbone is frozen (BN statistics too); the controller learns through hard decisions with a
straight-through surrogate gradient. Loss per batch::

    CE(logits, labels) + distill_weight * T^2 * KL(dense teacher || student at temperature T)
        + mac_penalty * |mean MAC fraction - target_mac_fraction|         (cost macs, target set)
        + mac_penalty * mean MAC fraction                                   (cost macs, no target)
        + mac_penalty * |mean table cost - target| / dense table cost      (cost latency or energy)

The MAC fraction is the accounting of :mod:`dance3d.dynamic.accounting` (controller included),
differentiable through the surrogate masks. With ``cost`` ``latency`` (``energy``) the budget term
charges instead what the decisions cost on a device: the per-clip cost predicted by a measured
:class:`~dance3d.dance.device_cost.BlockCostTable` (``cost_table``) from each gated block's kept
counts, interpolated between levels, so the same surrogate masks carry its gradient; the target is
``target_latency_ms`` (``target_energy_j``) per clip, controller included.

``joint_epochs`` > 0 adds a short joint fine-tune:
backbone at ``joint_lr`` (BN statistics stay frozen), controller still at ``lr``. The file-level
stage (checkpoint in, checkpoint out) is :func:`dance3d.dance.pipeline.run_aap`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from dance3d.dance.common import batches
from dance3d.dance.data import ClipCache
from dance3d.dance.device_cost import COSTS, UNITS, BlockCostTable, load_for
from dance3d.dynamic import DynamicModel, set_execution_mode
from dance3d.progress import progress_bar


@dataclass(frozen=True)
class AapSettings:
    """AAP's training; the defaults are the DANCE benchmark's (``dance3d.dance.pipeline.PRESETS``)."""

    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-2
    target_mac_fraction: float | None = 0.30
    mac_penalty: float = 4.0
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    joint_epochs: int = 3
    joint_lr: float = 5e-4
    cost: str = "macs"  # what the budget term charges: macs, latency or energy (the last two need cost_table)
    cost_table: str | None = None  # JSON from 'dance3d cost-table' of this model on the target device
    target_latency_ms: float | None = None  # per clip, for cost latency
    target_energy_j: float | None = None  # per clip, for cost energy
    num_train_clips: int | None = None  # None: the whole train split
    measure_clips: int = 256  # val clips for the reported accuracy and MACs
    seed: int = 0
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.joint_epochs < 0:
            raise ValueError("epochs and batch_size must be >= 1, joint_epochs >= 0")
        if self.target_mac_fraction is not None and not 0.0 < self.target_mac_fraction <= 1.0:
            raise ValueError("target_mac_fraction must be in (0, 1] or null")
        if self.mac_penalty < 0 or self.distill_weight < 0 or not self.distill_temperature > 0:
            raise ValueError("need mac_penalty >= 0, distill_weight >= 0, distill_temperature > 0")
        if not self.lr > 0 or not self.joint_lr > 0:
            raise ValueError("lr and joint_lr must be > 0")
        self._check_cost()

    def _check_cost(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        targets = {"latency": self.target_latency_ms, "energy": self.target_energy_j}
        for cost, target in targets.items():
            name = f"target_{cost}_{UNITS[cost].lower()}"
            if target is not None and self.cost != cost:
                raise ValueError(f"{name} is set but the cost is {self.cost!r}: set cost={cost} or drop {name}")
            if target is not None and not target > 0:
                raise ValueError(f"{name} must be > 0, got {target}")
        if self.cost == "macs":
            if self.cost_table is not None:
                raise ValueError("cost_table is set but the cost is 'macs': set cost=latency or energy")
            return
        if self.cost_table is None:
            raise ValueError(f"cost={self.cost} needs cost_table, a table of this model from 'dance3d cost-table'")
        if targets[self.cost] is None:
            raise ValueError(f"cost={self.cost} needs target_{self.cost}_{UNITS[self.cost].lower()} (per clip)")

    @property
    def target_cost(self) -> float | None:
        """The per-clip target of a latency (ms) or energy (J) cost; None for MACs."""
        return {"latency": self.target_latency_ms, "energy": self.target_energy_j}.get(self.cost)


def mac_term(mac_fraction: torch.Tensor, settings: AapSettings) -> torch.Tensor:
    """The compute trade-off term of the loss, from per-clip MAC fractions (B,)."""
    mean = mac_fraction.mean()
    if settings.target_mac_fraction is None:
        return settings.mac_penalty * mean
    return settings.mac_penalty * (mean - settings.target_mac_fraction).abs()


def cost_term(clip_cost: torch.Tensor, table: BlockCostTable, settings: AapSettings) -> torch.Tensor:
    """The budget term for a latency or energy cost, from per-clip table costs (B,): the distance of their mean
    from the target, in units of the dense model's table cost (so ``mac_penalty`` weighs it as it weighs a MAC
    fraction)."""
    dense = table.dense_cost(settings.cost)
    return settings.mac_penalty * (clip_cost.mean() - settings.target_cost).abs() / dense


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
    table: BlockCostTable | None = None,
) -> dict[str, float]:
    sums = {"loss": 0.0, "ce": 0.0, "mac_fraction": 0.0, "correct": 0.0, "count": 0.0}
    cost_key = None if table is None else f"table_{settings.cost}_{UNITS[settings.cost].lower()}"
    if cost_key is not None:
        sums[cost_key] = 0.0
    order = list(batches(len(train), settings.batch_size, seed=settings.seed, epoch=epoch))
    bar = progress_bar(order, desc=desc, unit="batch", disable=not settings.progress)
    for indices in bar:
        clips, labels = train.batch(indices)
        logits = model(clips)
        fraction = model.last_mac_fraction
        ce = F.cross_entropy(logits, labels)
        if table is None:
            loss = ce + mac_term(fraction, settings)
        else:
            clip_cost = table.last_forward_cost(model, cost=settings.cost)
            loss = ce + cost_term(clip_cost, table, settings)
            sums[cost_key] += clip_cost.sum().item()
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
        bar.set_postfix(
            ce=f"{sums['ce'] / sums['count']:.3f}", macs=f"{sums['mac_fraction'] / sums['count']:.3f}", refresh=False
        )
    count = sums.pop("count")
    row = {k: v / count for k, v in sums.items()}
    row["train_top1"] = row.pop("correct")
    return row


def train_aap(
    model: DynamicModel,
    train: ClipCache,
    settings: AapSettings,
    *,
    teacher: torch.Tensor | None = None,
    cost_table: BlockCostTable | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Train the controller (backbone frozen), then optionally a short joint fine-tune (:class:`AapSettings`);
    returns epoch rows. A latency or energy cost reads ``settings.cost_table`` unless ``cost_table`` is given
    (either is checked against ``model``)."""
    table = None
    if settings.cost != "macs":
        table = cost_table or load_for(settings.cost_table, model, cost=settings.cost)
        table.check_matches(model)
    torch.manual_seed(settings.seed)
    model.eval()  # BN statistics stay frozen; the execution mode, not nn.Module.train, enables the STE
    set_execution_mode(model, "train")
    history = []
    controller = {"params": list(model.controller.parameters()), "lr": settings.lr}
    phases = [("controller", settings.epochs, [controller])]
    if settings.joint_epochs:
        backbone = {"params": list(model.backbone.parameters()), "lr": settings.joint_lr}
        phases.append(("joint", settings.joint_epochs, [controller, backbone]))
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
                row = _epoch(model, train, teacher, optimizer, settings, epoch=epoch_index, desc=desc, table=table)
                row = {"epoch": epoch_index + 1, "phase": phase, **row, "epoch_s": time.perf_counter() - started}
                history.append(row)
                epoch_index += 1
                log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    finally:
        set_execution_mode(model, "simulate")
        for p in model.parameters():
            p.requires_grad_(True)
    return history
