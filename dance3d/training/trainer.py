"""Dense trainer: AdamW/SGD + warm-up cosine schedule, mixed precision, progress, exact resume.

The epoch order of clips is a function of ``(seed, epoch)`` and the random state of each step a
function of ``(seed, step)``, so a run resumed from a mid-epoch checkpoint continues exactly as
the uninterrupted run would have. Runs under ``torchrun`` as DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from dance3d import run_lock
from dance3d.benchmark_results import dumps_strict
from dance3d.checkpoint import DENSE, Checkpoint, load_checkpoint, save_checkpoint
from dance3d.config import check_range, config_differences, save_config, to_dict
from dance3d.data.registry import DataConfig, build_dataset, dataset_classes
from dance3d.data.workers import worker_context
from dance3d.errors import ConfigError, DataError
from dance3d.evaluation import evaluate
from dance3d.forecast.task import ForecastTask
from dance3d.models import create_model
from dance3d.progress import progress_bar
from dance3d.training.distributed import DistContext, all_reduce_sum, init_from_env, shutdown


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    model_options: dict[str, Any] = field(default_factory=dict)  # builder keywords, e.g. inner_multiplier
    pretrained: str | None = None
    epochs: int = 6
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_steps: int = 30
    label_smoothing: float = 0.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    num_workers: int = 1
    threads: int = 0  # 0: torch's default
    seed: int = 0
    checkpoint_every_steps: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every_steps"):
            check_range(f"train.{name}", getattr(self, name), low=1)
        for name in ("warmup_steps", "num_workers", "threads", "weight_decay"):
            check_range(f"train.{name}", getattr(self, name), low=0)
        check_range("train.lr", self.lr, low=0, low_open=True)
        check_range("train.momentum", self.momentum, low=0, high=1, high_open=True)
        check_range("train.label_smoothing", self.label_smoothing, low=0, high=1, high_open=True)
        check_device_name(self.device, "train.device")


RESUMABLE_CHANGES = frozenset({"train.device", "train.num_workers", "train.threads", "train.progress"})
"""Config keys a resumed run may change: where and how fast it runs, not what it computes."""


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class StartModel:
    """Train this module instead of building ``config.train.model`` (e.g. a pruned model); its checkpoint
    records ``kind`` and ``spec`` (what that registered checkpoint kind rebuilds it from)."""

    module: nn.Module
    kind: str
    spec: dict[str, Any]


@dataclass
class TrainResult:
    checkpoint_path: Path
    history: list[dict[str, Any]]
    already_finished: bool = False  # a resumed run that had done all its epochs: nothing was run or written
    skipped_videos: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) left out of training


def check_resume_config(stored: dict[str, Any], config: RunConfig, checkpoint_path: Path) -> None:
    """Refuse to resume with settings that contradict the run's own (naming both values)."""
    conflicts = [d for d in config_differences(stored, to_dict(config)) if d.split(":")[0] not in RESUMABLE_CHANGES]
    if conflicts:
        raise ConfigError(
            f"--resume: {checkpoint_path} was started with other settings ({'; '.join(conflicts)}); "
            "resume without those flags to continue it as it was started"
        )


def check_device_name(name: str, what: str = "device") -> None:
    """Refuse a device string torch cannot parse (``gpu``, ``cpu:abc``) with one line naming ``what``."""
    if name == "auto":
        return
    try:
        torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{what} must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from None


def resolve_device(name: str) -> torch.device:
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``None`` means fp32. ``auto`` picks bf16/fp16 on CUDA and fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class EpochSampler(Sampler[int]):
    """Deterministic per-epoch permutation, sharded by rank, resumable mid-epoch."""

    def __init__(self, size: int, *, seed: int, ctx: DistContext, batch_size: int) -> None:
        self.size, self.seed, self.ctx, self.batch_size = size, seed, ctx, batch_size
        self.epoch = 0
        self.skip_batches = 0

    def steps_per_epoch(self) -> int:
        per_rank = self.size // self.ctx.world_size
        if self.ctx.enabled:
            return per_rank // self.batch_size  # equal step counts on every rank
        return math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[self.ctx.rank :: self.ctx.world_size]
        order = order[: self.steps_per_epoch() * self.batch_size]
        return iter(order[self.skip_batches * self.batch_size :].tolist())

    def __len__(self) -> int:
        return max(0, min(self.size, self.steps_per_epoch() * self.batch_size) - self.skip_batches * self.batch_size)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _log(ctx: DistContext, message: str) -> None:
    if ctx.is_main:
        tqdm.write(message)


def train(
    config: RunConfig, out_dir: str | Path, *, resume: bool = False, start: StartModel | None = None
) -> TrainResult:
    """Train ``config.train.model`` (or ``start.module``) on ``config.data``; writes ``model.pt``, ``metrics.jsonl``.

    The run holds ``out_dir``'s lock (:mod:`dance3d.run_lock`) while it runs, so a second run on the
    same folder is refused instead of overwriting it. ``resume=True`` continues the run saved there,
    with the settings it was started with (``config`` may differ only in ``RESUMABLE_CHANGES``).
    """
    out_dir = Path(out_dir)
    tc = config.train
    device = resolve_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    ctx = init_from_env(device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    lock = run_lock.acquire(out_dir) if ctx.is_main else None
    try:
        return _train(config, out_dir, device=device, ctx=ctx, resume=resume, start=start)
    finally:
        if lock is not None:
            run_lock.release(lock)


def _train(
    config: RunConfig,
    out_dir: Path,
    *,
    device: torch.device,
    ctx: DistContext,
    resume: bool,
    start: StartModel | None,
) -> TrainResult:
    tc = config.train
    checkpoint_path = out_dir / "model.pt"
    forecast = ForecastTask.for_data(config.data)  # None: classification
    kind = start.kind if start else forecast.kind if forecast else DENSE
    state = None
    if resume:
        if not checkpoint_path.is_file():
            raise ConfigError(f"--resume: no checkpoint at {checkpoint_path}")
        state = load_checkpoint(checkpoint_path)
        if state.get("kind") != kind or "optimizer" not in state:
            raise ConfigError(f"--resume: {checkpoint_path} is not a resumable {kind} training checkpoint")
        if "config" in state:
            check_resume_config(state["config"], config, checkpoint_path)
        if state.get("epochs_done", 0) >= tc.epochs:
            _log(ctx, f"{checkpoint_path} already finished its {tc.epochs} epochs; nothing to do")
            shutdown(ctx)
            return TrainResult(checkpoint_path, list(state["history"]), already_finished=True)
    elif checkpoint_path.exists():
        raise ConfigError(f"{checkpoint_path} exists; pass --resume to continue it or choose another --out")

    skipped: list = []
    if forecast:
        train_set, val_set, classes = forecast.datasets()  # classes: the forecast variables
    else:
        train_set = build_dataset(config.data, "train")
        skipped = _probe_videos(train_set, config.data, progress=tc.progress and ctx.is_main, what="training")
        classes = dataset_classes(train_set)
        val_set = _optional_split(config.data, "val", classes)
        if val_set is not None:
            skipped += _probe_videos(val_set, config.data, progress=tc.progress and ctx.is_main, what="validation")
    if val_set is None:
        _log(ctx, f"no val split in {config.data.source}: epochs are not validated")
    torch.manual_seed(tc.seed)
    if start is not None:
        model, model_spec = start.module.to(device), start.spec
    else:
        options = forecast.model_options(tc.model, tc.model_options, train_set) if forecast else dict(tc.model_options)
        model_spec = {"name": tc.model, "num_classes": len(classes), "options": options}
        if state is not None and state["model"] != model_spec:
            raise ConfigError(
                f"--resume: {checkpoint_path} holds {state['model']}, this run asks for {model_spec}; "
                "resume with the --model and train.model_options it was started with"
            )
        model = create_model(tc.model, num_classes=len(classes), pretrained=tc.pretrained, **options)
        model = model.to(device)
    optimizer = build_optimizer(model, tc)
    sampler = EpochSampler(len(train_set), seed=tc.seed, ctx=ctx, batch_size=tc.batch_size)
    steps_per_epoch = sampler.steps_per_epoch()
    if steps_per_epoch == 0:
        raise DataError(f"the training set has {len(train_set)} clips: fewer than one batch per process")
    scheduler = cosine_with_warmup(
        optimizer, warmup_steps=min(tc.warmup_steps, steps_per_epoch), total_steps=tc.epochs * steps_per_epoch
    )
    dtype = autocast_dtype(tc.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    history: list[dict[str, Any]] = []
    global_step = 0
    totals = torch.zeros(3, dtype=torch.float64)  # this epoch's loss sum, correct, count (this rank)
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        global_step = state["global_step"]
        totals = torch.tensor(state["epoch_totals"], dtype=torch.float64)
        _log(ctx, f"resuming {checkpoint_path} at epoch {global_step // steps_per_epoch + 1}, step {global_step}")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if ctx.enabled else model

    def checkpoint() -> None:
        if ctx.is_main:
            record = Checkpoint.create(
                kind,
                model_spec,
                model.state_dict(),
                data=config.data,
                classes=classes,
                config=config,
                history=history,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                global_step=global_step,
                epochs_done=global_step // steps_per_epoch,
                epoch_totals=totals.tolist(),
            )
            save_checkpoint(record, checkpoint_path)

    start_epoch = global_step // steps_per_epoch
    for epoch in range(start_epoch, tc.epochs):
        sampler.epoch = epoch
        if hasattr(train_set, "set_epoch"):  # random clip windows differ per epoch
            train_set.set_epoch(epoch)
        sampler.skip_batches = global_step - epoch * steps_per_epoch
        loader = DataLoader(
            train_set,
            batch_size=tc.batch_size,
            sampler=sampler,
            num_workers=tc.num_workers,
            persistent_workers=False,
            multiprocessing_context=worker_context(train_set, tc.num_workers),
        )
        net.train()
        if sampler.skip_batches == 0:
            totals = torch.zeros(3, dtype=torch.float64)
        started = time.perf_counter()
        bar = progress_bar(
            loader,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            unit="batch",
            total=len(loader),
            disable=not (tc.progress and ctx.is_main),
        )
        for batch in bar:
            torch.manual_seed(tc.seed * 1_000_003 + global_step)
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                if forecast:
                    loss, count = forecast.loss(net, batch, device)
                else:
                    clips, labels = batch["clip"].to(device), batch["label"].to(device)
                    logits = net(clips)
                    loss = F.cross_entropy(logits.float(), labels, label_smoothing=tc.label_smoothing)
                    count = len(labels)
            if not torch.isfinite(loss):
                raise DataError(f"training loss became {loss.item()} at step {global_step}; lower --set train.lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            global_step += 1
            correct = 0 if forecast else (logits.argmax(1) == labels).sum().item()
            totals += torch.tensor([loss.item() * count, correct, count], dtype=torch.float64)
            shown = {"loss": f"{totals[0] / totals[2]:.3f}"}
            if not forecast:
                shown["acc"] = f"{totals[1] / totals[2]:.3f}"
            bar.set_postfix(shown, refresh=False)  # shown with the count at the bar's next refresh
            if global_step % tc.checkpoint_every_steps == 0 and global_step % steps_per_epoch:
                checkpoint()
        summed = all_reduce_sum(totals.clone(), ctx)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": float(summed[0] / summed[2]),
            **({} if forecast else {"train_top1": float(summed[1] / summed[2])}),
            "lr": scheduler.get_last_lr()[0],
            "epoch_s": time.perf_counter() - started,
        }
        if forecast and ctx.is_main:
            row.update(forecast.validate(model, val_set, batch_size=tc.batch_size, device=device))
        elif val_set is not None and ctx.is_main:
            row["val_top1"] = evaluate(
                model, val_set, classes=classes, batch_size=tc.batch_size, device=device, progress=False
            ).top1
        replaced = getattr(train_set, "skipped", [])
        if replaced:
            row["replaced_videos"] = len(replaced)
            _log(ctx, f"epoch {epoch + 1}: {train_set.summary()}; each was replaced by the next good video")
        history.append(row)
        _log(ctx, "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        checkpoint()
        if ctx.is_main:
            (out_dir / "metrics.jsonl").write_text("".join(dumps_strict(r, indent=None) + "\n" for r in history))
    shutdown(ctx)
    return TrainResult(checkpoint_path, history, skipped_videos=skipped)


def _probe_videos(videos: Dataset, data: DataConfig, *, progress: bool, what: str) -> list[tuple[str, str]]:
    """Check every video's first frame before the first step: bad files are an error listing them, or with
    ``skip_bad`` are left out of the run (and returned as ``(path, reason)``)."""
    if not hasattr(videos, "scan_bad_videos"):
        return []
    if not data.skip_bad:
        videos.validate(progress=progress)
        return []
    bad = videos.scan_bad_videos(progress=progress)
    if bad:
        videos.drop([path for path, _ in bad])
        listed = ", ".join(f"{path} ({why})" for path, why in bad)
        tqdm.write(f"left {len(bad)} bad videos out of {what}: {listed}")
    return bad


def _optional_split(data: DataConfig, split: str, classes: tuple[str, ...]) -> Dataset | None:
    if data.is_synthetic or (Path(data.source) / split).is_dir():
        return build_dataset(data, split, classes=classes)
    return None
