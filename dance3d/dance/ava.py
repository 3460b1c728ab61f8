"""Stage 1, AVA: fine-tune the dense backbone to amplify activation variability.

Loss = cross-entropy - ``variability_weight`` x mean over kinds of the (capped) coefficient of
variation of the per-unit statistics that AAP's decisions act on (channel / frame / tile mean
|activation| of each gated block's inner activation), across clips and within a clip. The CV is
scale-free, so it cannot be inflated by scaling weights or BN gammas; each term saturates at
``cv_cap`` so amplification cannot run away from accuracy. The file-level stage (checkpoint in,
checkpoint out) is :func:`dance3d.dance.pipeline.run_ava`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dance3d.dance.common import accuracy, batches
from dance3d.dance.data import ClipCache
from dance3d.dance.variability import cv_across_clips, cv_within_clip, unit_statistics, variability_terms
from dance3d.dynamic import DynamicConfig, DynamicModel
from dance3d.progress import progress_bar


@dataclass(frozen=True)
class AvaSettings:
    epochs: int = 2
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.0
    variability_weight: float = 0.5
    cv_cap: float = 2.0
    tile_size: int = DynamicConfig.tile_size  # the tiles AAP gates by default
    num_train_clips: int | None = None  # None: the whole train split
    measure_clips: int = 256  # val clips used for before/after statistics and accuracy
    seed: int = 0
    threads: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2 (CV across clips needs 2 clips)")
        if not self.lr > 0 or self.variability_weight < 0 or not self.cv_cap > 0:
            raise ValueError("need lr > 0, variability_weight >= 0, cv_cap > 0")


@dataclass
class AvaResult:
    """One AVA fine-tune: its epoch rows, and the variability and top-1 (all units kept) before and after."""

    history: list[dict[str, Any]]
    variability_before: dict[str, np.ndarray]
    variability_after: dict[str, np.ndarray]
    top1_before: float
    top1_after: float

    def summary(self) -> dict[str, Any]:
        def means(values: dict[str, np.ndarray]) -> dict[str, float]:
            return {k: float(np.mean(v)) for k, v in values.items()}

        return {
            "top1_before": self.top1_before,
            "top1_after": self.top1_after,
            "cv_mean_before": means(self.variability_before),
            "cv_mean_after": means(self.variability_after),
        }


@torch.no_grad()
def measure_variability(model: DynamicModel, cache: ClipCache, *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per-unit CV across all clips of ``cache`` and per-clip CV within each clip, per unit kind."""
    model.eval()
    model.record_inner(True)
    stats: dict[tuple[int, str], list[torch.Tensor]] = {}
    try:
        for start in range(0, len(cache), batch_size):
            clips, _ = cache.batch(torch.arange(start, min(start + batch_size, len(cache))))
            model(clips, decisions=model.full_decisions(len(clips)))
            for index, inner in model.inner_activations().items():
                for unit, values in unit_statistics(inner, model.gated[index].grid).items():
                    stats.setdefault((index, unit), []).append(values)
    finally:
        model.record_inner(False)
    out: dict[str, list[np.ndarray]] = {}
    for (_, unit), chunks in stats.items():
        values = torch.cat(chunks)
        if values.shape[1] > 1:
            out.setdefault(f"within.{unit}", []).append(cv_within_clip(values).numpy())
        out.setdefault(f"across.{unit}", []).append(cv_across_clips(values).numpy())
    return {k: np.concatenate(v) for k, v in sorted(out.items())}


def train_ava(model: DynamicModel, train: ClipCache, settings: AvaSettings, *, log=print) -> list[dict[str, Any]]:
    """Fine-tune ``model``'s backbone (all units kept) with the AVA loss; returns per-epoch rows."""
    parameters = [p for p in model.backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * max(1, len(train) // settings.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    grids = [g.grid for g in model.gated]
    history = []
    model.record_inner(True)
    try:
        for epoch in range(settings.epochs):
            model.train()
            started = time.perf_counter()
            sums = {"loss": 0.0, "ce": 0.0, "cv": 0.0, "correct": 0.0, "count": 0.0}
            order = list(batches(len(train), settings.batch_size, seed=settings.seed, epoch=epoch))
            desc = f"ava {epoch + 1}/{settings.epochs}"
            bar = progress_bar(order, desc=desc, unit="batch", disable=not settings.progress)
            for indices in bar:
                clips, labels = train.batch(indices)
                logits = model(clips, decisions=model.full_decisions(len(clips)))
                terms = variability_terms(model.inner_activations(), grids)
                variability = torch.stack([t.clamp(max=settings.cv_cap) for t in terms.values()]).mean()
                ce = F.cross_entropy(logits, labels)
                loss = ce - settings.variability_weight * variability
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                n = len(labels)
                sums["loss"] += loss.item() * n
                sums["ce"] += ce.item() * n
                sums["cv"] += variability.item() * n
                sums["correct"] += float((logits.argmax(1) == labels).sum())
                sums["count"] += n
                bar.set_postfix(
                    ce=f"{sums['ce'] / sums['count']:.3f}", cv=f"{sums['cv'] / sums['count']:.3f}", refresh=False
                )
            count = sums.pop("count")
            row = {"epoch": epoch + 1, **{k: v / count for k, v in sums.items()}}
            row["train_top1"] = row.pop("correct")
            row["epoch_s"] = time.perf_counter() - started
            history.append(row)
            log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    finally:
        model.record_inner(False)
    return history


def amplify(model: DynamicModel, train: ClipCache, val: ClipCache, settings: AvaSettings, *, log=print) -> AvaResult:
    """Stage 1 in memory: measure ``model`` on ``val``, fine-tune its backbone on ``train``, measure again."""
    before, top1_before = measure_variability(model, val), accuracy(model, val, keep_all=True)
    history = train_ava(model, train, settings, log=log)
    after, top1_after = measure_variability(model, val), accuracy(model, val, keep_all=True)
    return AvaResult(history, before, after, top1_before, top1_after)
