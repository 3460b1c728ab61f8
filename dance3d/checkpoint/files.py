"""Reading and writing checkpoint files: atomic writes, and read errors that say what is wrong.

A write goes to a temp file beside the target, then replaces it: a killed process leaves the old
file or the new one, and its orphaned temp file is removed by the next write of that checkpoint.
One process writes a given checkpoint at a time (the trainer writes from its main rank only).
"""

from __future__ import annotations

import glob
import os
import pickle
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint.kinds import DENSE, infer_kind
from dance3d.checkpoint.record import FORMAT, FORMAT_VERSION, Checkpoint
from dance3d.errors import CheckpointError

TEMP_SUFFIX = ".tmp"


def checkpoint_path(path: str | Path) -> Path:
    """``path`` resolved to its one absolute spelling, with a clear error (naming it as given) unless it is a file."""
    given = Path(path).expanduser()
    if given.is_dir():
        hint = f"; did you mean {given / 'model.pt'}?" if (given / "model.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {given} is a directory, not a file{hint}")
    if not given.is_file():
        raise CheckpointError(f"checkpoint not found: {given}")
    return given.resolve()


def temp_files(path: Path) -> list[Path]:
    """Temp files a write of ``path`` creates (and leaves behind if it is killed)."""
    return [Path(p) for p in glob.glob(f"{glob.escape(str(path))}.*{TEMP_SUFFIX}")]


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write ``checkpoint`` atomically, with the permissions the process umask gives a new file."""
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"save_checkpoint takes a Checkpoint (Checkpoint.create(...)), not {type(checkpoint).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in temp_files(path):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to any new file
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint.to_payload(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a dance3d checkpoint (files of format 1 get their kind inferred)."""
    resolved = checkpoint_path(path)
    try:
        payload = torch.load(resolved, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for files it cannot read
        raise CheckpointError(f"cannot read checkpoint {path}: {unreadable_reason(resolved, exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dance3d checkpoint (plain weights? use --pretrained)")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer dance3d (format {version})")
    kind = payload.get("kind") if version >= 2 else _kind_of_format_1(payload, path)
    if not isinstance(kind, str):
        raise CheckpointError(f"{path}: checkpoint has no 'kind' entry")
    return Checkpoint.from_payload(payload, kind=kind, source=path)


def _kind_of_format_1(payload: Mapping[str, Any], path: str | Path) -> str:
    """Format 1 recorded ``dense`` (or nothing) for every network it rebuilt from a spec alone."""
    recorded = payload.get("kind", DENSE)
    if recorded != DENSE:
        return recorded
    if not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path}: checkpoint has no 'model' entry (written by another program?)")
    return infer_kind(payload["model"])


def unreadable_reason(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, in words (never torch's advice to load unsafely)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return f"the file is truncated or corrupt ({size} bytes, the zip archive torch writes is incomplete)"
    if isinstance(exc, pickle.UnpicklingError) and "global" in str(exc).lower():
        return "it holds pickled Python objects (e.g. a whole model saved with torch.save(model)), not tensors and data"
    if not head.startswith((b"PK", b"\x80")):
        return "it is not a torch checkpoint (its first bytes are neither a zip archive nor a pickle)"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "weights_only" in first_line:
        return "its contents do not unpickle as tensors and plain data"
    return f"the file is truncated or corrupt ({type(exc).__name__}: {first_line})"
