"""Pieces shared by the AVA and AAP trainers: loading the input checkpoint, batching, logging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import dance3d.mdp.checkpoint  # noqa: F401 - registers "pruned": the stages start from MDP output too
from dance3d.checkpoint import Checkpoint, load_checkpoint, load_network
from dance3d.dance.data import ClipCache
from dance3d.errors import ConfigError
from profiling.strict_json import dumps_strict

STAGE_INPUT_KINDS = ("dense", "pruned")


def load_backbone_checkpoint(path: str | Path) -> tuple[Checkpoint, torch.nn.Module]:
    """A dense or MDP-``pruned`` checkpoint and its model (eval mode); AVA and AAP both start from one.

    A pruned model is rebuilt as the dense model's module tree with the narrower layers and the
    removed blocks (``dance3d.mdp.checkpoint.build_pruned_backbone``), so ``convert_model`` finds its
    residual blocks; its spec travels into the stage's output checkpoint, which rebuilds it too.
    """
    checkpoint = load_checkpoint(path)
    kind = checkpoint.kind
    if kind not in STAGE_INPUT_KINDS:
        raise ConfigError(
            f"{path} is a {kind!r} checkpoint; expected a dense one (train or ava output) or a pruned one (mdp output)"
        )
    return checkpoint, load_network(checkpoint, source=path)


def clip_shape(data) -> tuple[int, int, int]:
    return (data.num_frames, data.height, data.width)


def batches(size: int, batch_size: int, *, seed: int, epoch: int, drop_last: bool = True) -> Iterator[torch.Tensor]:
    """Shuffled index batches, a function of (seed, epoch)."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    stop = size - size % batch_size if drop_last and size >= batch_size else size
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def prepare_out_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if (out_dir / "model.pt").exists():
        raise ConfigError(f"{out_dir / 'model.pt'} exists; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def start_stage(
    config: Any, checkpoint_path: str | Path, out_dir: str | Path, *, threads: int, seed: int
) -> tuple[Checkpoint, torch.nn.Module, Path, tuple[str, ...]]:
    """Shared start of a DANCE stage: threads, dense or pruned checkpoint, output dir with its config, seed."""
    from dance3d.config import save_config

    if threads:
        torch.set_num_threads(threads)
    checkpoint, dense = load_backbone_checkpoint(checkpoint_path)
    out = prepare_out_dir(out_dir)
    save_config(config, out / "config.yaml")
    torch.manual_seed(seed)
    return checkpoint, dense, out, checkpoint.classes


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(dumps_strict(r, indent=None) + "\n" for r in rows))


@torch.no_grad()
def clip_hits(
    model: torch.nn.Module, cache: ClipCache, *, batch_size: int = 64, keep_all: bool = False
) -> torch.Tensor:
    """Per clip of a cached split, whether ``model`` (eval mode) gets it right (bool, in the cache's order);
    ``keep_all``: a dynamic model with every unit kept."""
    model.eval()
    hits = []
    for start in range(0, len(cache), batch_size):
        clips, labels = cache.batch(torch.arange(start, min(start + batch_size, len(cache))))
        kwargs = {"decisions": model.full_decisions(len(clips))} if keep_all else {}
        hits.append(model(clips, **kwargs).argmax(1) == labels)
    return torch.cat(hits)


def accuracy(model: torch.nn.Module, cache: ClipCache, *, batch_size: int = 64, keep_all: bool = False) -> float:
    """Top-1 of ``model`` on a cached split (eval mode); ``keep_all``: a dynamic model with every unit kept."""
    return float(clip_hits(model, cache, batch_size=batch_size, keep_all=keep_all).float().mean())
