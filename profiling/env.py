"""Environment report: software versions, threads, CPU/GPU/board, and which energy meters work."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from profiling.conditions import collect_conditions
from profiling.meters.select import candidate_meters


def _read_first(path: Path) -> str | None:
    try:
        return path.read_bytes().replace(b"\x00", b"").decode(errors="replace").strip() or None
    except OSError:
        return None


def _cpu_model(root: Path) -> str:
    text = _read_first(root / "proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def device_name(device: str | Any) -> str:
    """Human-readable name of a torch device: the GPU model, or the CPU model."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return _cpu_model(Path("/"))


def _devices(torch: Any, cpu_model: str) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = [{"device": "cpu", "name": cpu_model, "logical_cores": os.cpu_count()}]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(
                {
                    "device": f"cuda:{index}",
                    "name": props.name,
                    "compute_capability": f"{props.major}.{props.minor}",
                    "memory_gib": round(props.total_memory / 2**30, 2),
                }
            )
    return devices


def meter_status(devices: list[str], *, root: str | Path = "/") -> list[dict[str, Any]]:
    """Probe every candidate meter of every device (each meter name once per device kind)."""
    rows, seen = [], set()
    for device in devices:
        for meter in candidate_meters(device, root=root):
            key = (meter.name, device if meter.name.startswith("nvml") else "")
            if key in seen:
                meter.close()
                continue
            seen.add(key)
            availability = meter.probe()
            meter.close()
            rows.append(
                {
                    "meter": meter.name,
                    "device": device,
                    "available": availability.ok,
                    "reason": availability.reason,
                }
            )
    return rows


def _git(where: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_revision(path: str | Path | None = None, *, ignore: tuple[str, ...] = ("benchmarks/results",)) -> str | None:
    """The git commit of the checkout holding ``path`` (default: this package), ``-dirty`` if tracked
    files outside ``ignore`` (paths from the checkout's top; results that runs write) have uncommitted
    changes; None outside a git checkout or without git (an installed wheel)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    commit = _git(where, "rev-parse", "--verify", "--quiet", "HEAD")
    if not commit:
        return None
    excluded = [f":(top,exclude){p}" for p in ignore]
    changes = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    return f"{commit}-dirty" if changes else commit


def collect_env(*, root: str | Path = "/") -> dict[str, Any]:
    """A JSON-ready description of this machine for reports and sweep metadata."""
    import torch

    root = Path(root)
    cpu_model = _cpu_model(root)
    devices = _devices(torch, cpu_model)
    cuda_devices = [d["device"] for d in devices if d["device"].startswith("cuda")] or ["cuda:0"]
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "source_revision": source_revision(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_model": cpu_model,
        "board": _read_first(root / "proc/device-tree/model"),
        "devices": devices,
        "meters": meter_status(["cpu", *cuda_devices], root=root),
        "conditions": collect_conditions("cuda:0" if torch.cuda.is_available() else "cpu", root=root),
    }
