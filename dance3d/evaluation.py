"""Evaluate a model on a dataset: top-1/top-5, per-class accuracy, per-clip records.

A model may expose ``clip_stats() -> list[dict]`` describing each clip of its last forward pass
(dynamic models report their MACs and keep rates this way); those fields join the per-clip
records and get mean/p10/p50/p90 summaries.

A video folder read with ``skip_bad`` is scored without its bad videos: each is dropped (never
replaced by another clip, which would be scored twice) and reported in ``EvalResult.skipped``,
also when DataLoader workers read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, default_collate

from dance3d.data.workers import worker_context
from dance3d.errors import DataError
from dance3d.progress import progress_bar


@dataclass
class EvalResult:
    top1: float
    top5: float
    num_clips: int
    per_class_accuracy: dict[str, float]
    clip_stat_summary: dict[str, dict[str, float]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of bad videos left out

    def to_dict(self, *, with_records: bool = True) -> dict[str, Any]:
        out = {
            "top1": self.top1,
            "top5": self.top5,
            "num_clips": self.num_clips,
            "per_class_accuracy": self.per_class_accuracy,
            "clip_stat_summary": self.clip_stat_summary,
            "skipped": {"count": len(self.skipped), "videos": [{"path": p, "reason": r} for p, r in self.skipped]},
        }
        if with_records:
            out["records"] = self.records
        return out


def _unbatch_meta(meta: dict[str, Any], size: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, values in meta.items():
        values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
        for row, value in zip(rows, values, strict=True):
            row[key] = value
    return rows


def _summarise(records: list[dict[str, Any]], keys: set[str]) -> dict[str, dict[str, float]]:
    summary = {}
    for key in sorted(keys):
        values = np.array([r[key] for r in records if isinstance(r.get(key), (int, float))], dtype=float)
        if len(values):
            summary[key] = {
                "mean": float(values.mean()),
                "p10": float(np.percentile(values, 10)),
                "p50": float(np.percentile(values, 50)),
                "p90": float(np.percentile(values, 90)),
            }
    return summary


class _DropBad(Dataset):
    """A video dataset whose bad items come back as ``{"bad": (path, reason)}`` instead of being replaced."""

    def __init__(self, videos: Dataset) -> None:
        self.dataset = videos  # named as torch's wrappers name what they wrap (read by worker_context)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from dance3d.data.video_io import BadVideoError

        try:
            return self.dataset.load(index)
        except BadVideoError as exc:
            return {"bad": (exc.path, exc.reason)}


def _collate(items: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    good = [item for item in items if "bad" not in item]
    return (default_collate(good) if good else None), [tuple(item["bad"]) for item in items if "bad" in item]


def _skips_bad(dataset: Dataset) -> bool:
    config = getattr(dataset, "config", None)
    return bool(getattr(config, "skip_bad", False)) and hasattr(dataset, "load")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    classes: tuple[str, ...],
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    limit: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run ``model`` over ``dataset`` (or its first ``limit`` clips) and score it (bad videos dropped, see above)."""
    if _skips_bad(dataset):
        dataset = _DropBad(dataset)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise DataError("the evaluation dataset is empty")
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                        multiprocessing_context=worker_context(dataset, num_workers))  # fmt: skip
    skipped: list[tuple[str, str]] = []
    model = model.to(device).eval()
    clip_stats = getattr(model, "clip_stats", None)
    records: list[dict[str, Any]] = []
    stat_keys: set[str] = set()
    top5_hits = 0
    index = 0
    for batch, bad in progress_bar(loader, desc="eval", unit="batch", disable=not progress):
        skipped += bad
        if batch is None:
            continue
        clips = batch["clip"].to(device)
        logits = model(clips).float()
        if not torch.isfinite(logits).all():
            raise DataError(f"the model produced NaN/inf logits on clips {index}..{index + len(clips) - 1}")
        labels = batch["label"].to(device)
        k = min(5, logits.shape[1])
        top5_hits += (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()
        preds = logits.argmax(dim=1)
        metas = _unbatch_meta(batch.get("meta", {}), len(clips))
        stats = clip_stats() if callable(clip_stats) else [{} for _ in range(len(clips))]
        for i in range(len(clips)):
            stat_keys.update(stats[i])
            records.append(
                {
                    "index": index,
                    "label": int(labels[i]),
                    "prediction": int(preds[i]),
                    "correct": bool(preds[i] == labels[i]),
                    **metas[i],
                    **stats[i],
                }
            )
            index += 1
    num = len(records)
    if num == 0:
        raise DataError(f"every one of the {len(skipped)} videos evaluated is bad: {_listed(skipped)}")
    per_class = {}
    for class_index, name in enumerate(classes):
        hits = [r["correct"] for r in records if r["label"] == class_index]
        per_class[name] = sum(hits) / len(hits) if hits else math.nan
    return EvalResult(
        top1=sum(r["correct"] for r in records) / num,
        top5=top5_hits / num,
        num_clips=num,
        per_class_accuracy=per_class,
        clip_stat_summary=_summarise(records, stat_keys),
        records=records,
        skipped=skipped,
    )


def _listed(skipped: list[tuple[str, str]]) -> str:
    return ", ".join(f"{path} ({reason})" for path, reason in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
