"""Static baselines: magnitude pruning of inner channels (same for every clip), then fine-tuning.

Each gated block keeps the ``round(keep_fraction x C)`` inner channels whose producing conv filters
have the largest L1 norm, rounded to ``channel_multiple`` as the dynamic model's levels are (a
backend that computes channels in blocks of 16 runs 8 of them as slowly as 16, docs/design.md §2.2); tiles
are all kept. Frames are all kept too, or, with
``frame_keep_fraction < 1``, the same evenly spaced frames of every clip in every block that can
skip frames (a fixed lower frame rate of the residual branches, in the dynamic model's
compressed-clip semantics). The channel keep fraction is solved so the model's MACs match a given
fraction of the dense model's (gated convs scale linearly with it); with rounded widths, the
narrowest widths that reach it are searched for.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dance3d.dance.aap import distillation
from dance3d.dance.common import batches
from dance3d.dance.data import ClipCache
from dance3d.dynamic import BlockDecision, DynamicModel
from dance3d.errors import ConfigError
from dance3d.progress import progress_bar


def expand(decisions: list[BlockDecision], batch_size: int) -> list[BlockDecision]:
    """Decisions of one clip repeated for ``batch_size`` clips."""
    return [
        BlockDecision(
            d.frames.expand(batch_size, -1), d.channels.expand(batch_size, -1), d.tiles.expand(batch_size, -1), d.grid
        )
        for d in decisions
    ]


def even_frames(count: int, kept: int) -> torch.Tensor:
    """(1, count) bool mask of ``kept`` evenly spaced frames, the first one included."""
    mask = torch.zeros(1, count, dtype=torch.bool)
    mask[0, (torch.arange(kept) * count) // kept] = True
    return mask


def kept_channel_count(count: int, keep_fraction: float, *, multiple: int = 1) -> int:
    """``keep_fraction x count`` rounded to the nearest multiple of ``multiple`` (at least one multiple, at most
    ``count``)."""
    if multiple < 1:
        raise ConfigError(f"channel_multiple must be >= 1, got {multiple}")
    return min(count, max(multiple, round(keep_fraction * count / multiple) * multiple))


def magnitude_decisions(
    model: DynamicModel, keep_fraction: float, *, frame_keep_fraction: float = 1.0, channel_multiple: int = 1
) -> list[BlockDecision]:
    """Per gated block, the inner channels with the largest L1 filter norm and evenly spaced frames (one clip)."""
    if not 0.0 < frame_keep_fraction <= 1.0:
        raise ConfigError(f"frame_keep_fraction must be in (0, 1], got {frame_keep_fraction}")
    decisions = []
    for full, norms, gated in zip(model.full_decisions(1), model.channel_filter_norms(), model.gated, strict=True):
        keep = kept_channel_count(len(norms), keep_fraction, multiple=channel_multiple)
        channels = torch.zeros(1, len(norms), dtype=torch.bool)
        channels[0, norms.topk(keep).indices] = True
        frames = full.frames
        if gated.frame_stride is not None and frame_keep_fraction < 1.0:
            count = frames.shape[1]
            frames = even_frames(count, max(1, round(frame_keep_fraction * count)))
        decisions.append(BlockDecision(frames, channels, full.tiles, full.grid))
    return decisions


@torch.no_grad()
def static_mac_fraction(model: DynamicModel, decisions: list[BlockDecision]) -> float:
    """MAC fraction of the dense model that fixed ``decisions`` cost (analytic accounting)."""
    model.eval()
    model(torch.zeros(1, 3, *model.clip_shape), decisions=decisions)
    return float(model.last_mac_fraction[0])


def keep_fraction_for(
    model: DynamicModel,
    mac_fraction: float,
    *,
    frame_keep_fraction: float = 1.0,
    channel_multiple: int = 1,
    slack: float = 0.0,
) -> float:
    """The channel keep fraction at which the static model costs ``mac_fraction`` of the dense MACs.

    With ``channel_multiple`` > 1 only some widths exist: the narrowest whose MACs reach at least
    ``mac_fraction - slack`` (a budget no smaller than asked for), or the widest if none does.
    """
    decide = functools.partial(
        magnitude_decisions, model, frame_keep_fraction=frame_keep_fraction, channel_multiple=channel_multiple
    )
    if channel_multiple == 1:  # gated MACs scale linearly with the kept fraction
        full = static_mac_fraction(model, decide(1.0))
        gated = sum(float(m[0]) for m in model.last_block_macs) / model.dense_macs
        return min(1.0, max(0.0, (mac_fraction - (full - gated)) / gated))
    candidates: dict[tuple[int, ...], tuple[float, float]] = {}  # kept widths -> (MAC fraction, keep fraction)
    for keep in np.linspace(0.0, 1.0, 201):
        decisions = decide(float(keep))
        widths = tuple(int(d.channels.sum()) for d in decisions)
        if widths not in candidates:
            candidates[widths] = (static_mac_fraction(model, decisions), float(keep))
    reaching = [c for c in candidates.values() if c[0] >= mac_fraction - slack]
    return (min(reaching) if reaching else max(candidates.values()))[1]


def finetune(
    module: torch.nn.Module,
    forward,
    train: ClipCache,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 16,
    seed: int = 0,
    teacher: torch.Tensor | None = None,
    distill_weight: float = 0.0,
    distill_temperature: float = 2.0,
    progress: bool = True,
    desc: str = "fine-tune",
    log=print,
) -> list[dict[str, Any]]:
    """Fine-tune ``module``'s parameters through ``forward(clips) -> logits`` (BN statistics frozen); returns epoch
    rows. Every static baseline trains here, so they all get the same schedule for the same budget.

    With ``teacher`` (dense logits of every train clip) the loss adds the same distillation term AAP
    uses, ``distill_weight`` at ``distill_temperature``.
    """
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.0)
    history = []
    module.eval()
    for epoch in range(epochs):
        started = time.perf_counter()
        loss_sum = correct = count = 0.0
        order = list(batches(len(train), batch_size, seed=seed, epoch=epoch))
        for indices in progress_bar(order, desc=f"{desc} {epoch + 1}/{epochs}", unit="batch", disable=not progress):
            clips, labels = train.batch(indices)
            logits = forward(clips)
            loss = F.cross_entropy(logits, labels)
            if teacher is not None and distill_weight > 0:
                loss = loss + distill_weight * distillation(logits, teacher[indices], distill_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += float((logits.argmax(1) == labels).sum())
            count += len(labels)
        row = {"epoch": epoch + 1, "loss": loss_sum / count, "train_top1": correct / count}
        row["epoch_s"] = time.perf_counter() - started
        history.append(row)
        log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return history


def finetune_static(
    model: DynamicModel, decisions: list[BlockDecision], train: ClipCache, **settings: Any
) -> list[dict[str, Any]]:
    """:func:`finetune` of the backbone under fixed ``decisions`` (the controller is not trained)."""
    model.eval()
    return finetune(
        model.backbone, lambda clips: model(clips, decisions=expand(decisions, len(clips))), train,
        desc="static", **settings,
    )  # fmt: skip


class StaticPrunedModel(torch.nn.Module):
    """A dynamic model run with the same fixed decisions for every clip (``evaluate`` compatible)."""

    def __init__(self, model: DynamicModel, decisions: list[BlockDecision]) -> None:
        super().__init__()
        self.model = model
        self.decisions = decisions

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(clips, decisions=expand(self.decisions, len(clips)))

    def clip_stats(self) -> list[dict[str, float]]:
        return self.model.clip_stats()
