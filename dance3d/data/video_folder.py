"""Video-folder datasets (UCF101, HMDB51, Kinetics layout): ``root/<class_name>/<video file>``.

Videos are decoded with PyAV when an item is read (only up to the last sampled frame), so a bad
file (corrupt, truncated, zero frames) is found then: it raises :class:`BadVideoError` naming the
file, or, with ``skip_bad=True``, is warned about, recorded in ``skipped`` and replaced by the next
good video. Replacing is for training only: evaluation reads items with ``load`` and drops bad
videos instead (``dance3d.evaluation``). ``scan_bad_videos()`` / ``validate()`` check every file's
first frame up front, and ``drop()`` leaves the bad ones out.

With DataLoader workers each worker process holds its own copy of the dataset, so ``skipped``
and ``summary()`` only count the files seen in the calling process (the warnings and errors
from workers still name the files).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from dance3d.data.video_io import BadVideoError, decode_video
from dance3d.errors import ConfigError, DataError
from dance3d.progress import progress_bar

SAMPLINGS = ("uniform", "random", "center")


class BadVideoWarning(UserWarning):
    """A bad video was skipped (``skip_bad=True``); the message names the file."""


@dataclass(frozen=True)
class VideoFolderConfig:
    """How clips are sampled, resized and normalised; ``skip_bad`` replaces bad videos."""

    num_frames: int = 16
    height: int = 64
    width: int = 64
    sampling: str = "uniform"  # uniform: spread over the whole video; random/center: a window
    frame_stride: int = 1  # step between frames of a random/center window
    resize_short_side: int | None = None  # None: smallest size that covers height x width
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    skip_bad: bool = False
    extensions: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm")

    def __post_init__(self) -> None:
        # Accept lists (from YAML/JSON configs); store tuples so the config stays hashable.
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "extensions", tuple(e.lower() for e in self.extensions))
        if min(self.num_frames, self.height, self.width, self.frame_stride) < 1:
            raise ConfigError("num_frames, height, width and frame_stride must be >= 1")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose from {', '.join(SAMPLINGS)}")
        if self.resize_short_side is not None and self.resize_short_side < max(self.height, self.width):
            raise ConfigError("resize_short_side must be >= max(height, width) to crop height x width")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean and std need 3 values (RGB), std > 0")
        if not self.extensions or not all(e.startswith(".") for e in self.extensions):
            raise ConfigError(f"extensions must start with a dot, got {self.extensions}")


def frame_indices(total: int, config: VideoFolderConfig, rng: np.random.Generator) -> list[int]:
    """Indices of the frames to keep from a ``total``-frame video (fewer than ``num_frames``
    when the video is too short; the caller pads by repeating the last frame)."""
    n = config.num_frames
    if config.sampling == "uniform":
        if total <= n:
            return list(range(total))
        return np.linspace(0, total - 1, n).round().astype(int).tolist()
    span = (n - 1) * config.frame_stride + 1
    start = 0
    if total > span:
        start = int(rng.integers(total - span + 1)) if config.sampling == "random" else (total - span) // 2
    return list(range(start, total, config.frame_stride))[:n]


def _list_dir(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"cannot list {path}: {exc.strerror or exc}") from None


class VideoFolderDataset(Dataset):
    """Map-style dataset of ``{"clip": (3,T,H,W) float tensor, "label": int, "meta": dict}``.

    ``classes`` fixes the label of each folder name (e.g. a checkpoint's classes); by default
    the sorted folder names. ``seed`` (with ``set_epoch``) drives ``sampling="random"``.
    """

    def __init__(
        self,
        root: str | Path,
        config: VideoFolderConfig | None = None,
        *,
        classes: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.config = config or VideoFolderConfig()
        self.seed = seed
        self.epoch = 0
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        folders = self._class_folders()
        names = classes if classes is not None else [f.name for f in folders]
        self.classes: tuple[str, ...] = tuple(names)
        self.samples = self._find_videos(folders)

    def _class_folders(self) -> list[Path]:
        if not self.root.exists():
            raise DataError(f"video folder {self.root} does not exist")
        if not self.root.is_dir():
            raise DataError(f"video folder {self.root} is not a directory")
        entries = _list_dir(self.root)
        folders = [p for p in entries if p.is_dir()]
        if not folders:
            loose = [p.name for p in entries if p.suffix.lower() in self.config.extensions]
            hint = f" (found videos directly in it, e.g. {loose[0]})" if loose else ""
            raise DataError(f"no class folders in {self.root}{hint}; expected root/<class_name>/<video file>")
        return folders

    def _find_videos(self, folders: list[Path]) -> list[tuple[Path, int]]:
        samples = []
        for folder in folders:
            if folder.name not in self.classes:
                raise DataError(
                    f"class folder {folder} is not one of the {len(self.classes)} known classes: "
                    f"{', '.join(self.classes)}"
                )
            label = self.classes.index(folder.name)
            videos = [p for p in _list_dir(folder) if p.suffix.lower() in self.config.extensions]
            if not videos:
                message = f"class folder {folder} has no videos ({', '.join(self.config.extensions)})"
                if not self.config.skip_bad:
                    raise DataError(message)
                warnings.warn(f"{message}; skipping it", BadVideoWarning, stacklevel=3)
            samples += [(p, label) for p in videos]
        if not samples:
            raise DataError(f"no videos in the class folders of {self.root}")
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Draw different random windows each epoch (still deterministic given the seed)."""
        self.epoch = epoch

    def drop(self, paths: Sequence[str]) -> None:
        """Leave the videos at ``paths`` out of the dataset (e.g. those ``scan_bad_videos`` found)."""
        gone = {str(p) for p in paths}
        self.samples = [(p, label) for p, label in self.samples if str(p) not in gone]
        self._bad.clear()
        if not self.samples:
            raise DataError(f"every video in {self.root} is bad")

    def load(self, index: int) -> dict[str, Any]:
        """Item ``index``; a bad video raises :class:`BadVideoError` whatever ``skip_bad`` says."""
        path, label = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        video = decode_video(path, select=lambda total: frame_indices(total, self.config, rng))
        frames = video.frames
        padded = self.config.num_frames - len(frames)
        if padded:
            frames = np.concatenate([frames, np.repeat(frames[-1:], padded, axis=0)])
        meta = {
            "path": str(path),
            "index": index,
            "num_frames_decoded": video.num_frames,
            "fps": video.fps,
            "padded_frames": padded,
        }
        return {"clip": self._to_clip(frames), "label": label, "meta": meta}

    def _to_clip(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> resized, centre-cropped, normalised (3, T, h, w) float32."""
        cfg = self.config
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)
        h, w = video.shape[-2:]
        scale = max(cfg.height / h, cfg.width / w)
        if cfg.resize_short_side is not None:
            scale = cfg.resize_short_side / min(h, w)
        size = [max(cfg.height, round(h * scale)), max(cfg.width, round(w * scale))]
        if size != [h, w]:
            video = F.resize(video, size, antialias=True)
        video = F.center_crop(video, [cfg.height, cfg.width])
        video = F.normalize(F.to_dtype(video, torch.float32, scale=True), list(cfg.mean), list(cfg.std))
        return video.permute(1, 0, 2, 3).contiguous()

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        if not self.config.skip_bad:
            return self.load(index)
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate in self._bad:
                continue
            try:
                return self.load(candidate)
            except BadVideoError as exc:
                self._bad.add(candidate)
                self.skipped.append((exc.path, exc.reason))
                warnings.warn(f"skipping {exc}", BadVideoWarning, stacklevel=2)
        raise DataError(f"every video in {self.root} is bad: {self.summary()}")

    def summary(self) -> str:
        """E.g. ``"skipped 2 of 10 videos: cat/a.mp4 (zero frames), ..."`` (this process only)."""
        text = f"skipped {len(self.skipped)} of {len(self)} videos"
        if not self.skipped:
            return text
        return text + ": " + ", ".join(f"{self._relative(p)} ({why})" for p, why in self.skipped)

    def _relative(self, path: str) -> str:
        return str(Path(path).relative_to(self.root))

    def scan_bad_videos(self, *, progress: bool = True) -> list[tuple[str, str]]:
        """Decode every video now; return ``(path, reason)`` for each one that fails."""
        bad = []
        for path, _ in progress_bar(self.samples, desc=f"checking {self.root}", unit="video", disable=not progress):
            try:
                decode_video(path, select=lambda total: [0])
            except BadVideoError as exc:
                bad.append((exc.path, exc.reason))
        return bad

    def validate(self, *, progress: bool = True) -> None:
        """Raise :class:`DataError` listing the bad videos, if any (see ``scan_bad_videos``)."""
        bad = self.scan_bad_videos(progress=progress)
        if bad:
            listed = ", ".join(f"{self._relative(p)} ({why})" for p, why in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DataError(f"{len(bad)} of {len(self)} videos in {self.root} are bad: {listed}{more}")
