"""In-memory clip caches, so multi-epoch fine-tuning does not regenerate clips every epoch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch.utils.data import Dataset

from dance3d.data.registry import DataConfig, build_dataset


@dataclass
class ClipCache(Dataset):
    """Clips stored as float16 (N, 3, T, H, W), labels (N,), per-clip metadata."""

    clips: torch.Tensor
    labels: torch.Tensor
    metas: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"clip": self.clips[index].float(), "label": int(self.labels[index]), "meta": self.metas[index]}

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clips[indices].float(), self.labels[indices]


def every_nth_frame(cache: ClipCache, stride: int) -> ClipCache:
    """The same clips at a ``stride`` times lower frame rate (every n-th frame, the first one included)."""
    if stride == 1:
        return cache
    return ClipCache(cache.clips[:, :, ::stride].contiguous(), cache.labels, cache.metas)


@lru_cache(maxsize=8)
def cached_split(
    data: DataConfig, split: str, *, classes: tuple[str, ...] | None = None, limit: int | None = None
) -> ClipCache:
    """All (or the first ``limit``) clips of ``split``, generated/decoded once per process."""
    dataset = build_dataset(data, split, classes=classes)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    samples = [dataset[i] for i in range(count)]
    return ClipCache(
        torch.stack([s["clip"] for s in samples]).half(),
        torch.tensor([s["label"] for s in samples]),
        [dict(s.get("meta", {})) for s in samples],
    )
