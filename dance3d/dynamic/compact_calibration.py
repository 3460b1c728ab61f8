"""Measured per-device choice between compact and all-positions execution of each bucket level.

For every gated block and every ``(kept frames, kept channels, kept tiles)`` level, a calibration
times the block run compactly and with all positions computed (channels sliced, skipped positions
masked), on the device it will run on, and records which was faster. Saved as JSON and reused;
blocks/levels it does not cover use the analytic default of :mod:`dance3d.dynamic.compact`.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dance3d.errors import ConfigError
from profiling.strict_json import dumps_strict

Level = tuple[int, int, int]


def level_key(block: int, level: Level) -> str:
    """``"block:frames/channels/tiles"``."""
    return f"{block}:{level[0]}/{level[1]}/{level[2]}"


def device_key(device: torch.device | str) -> str:
    """What a calibration is valid for: CPU model + threads, or the GPU name."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}:{torch.get_num_threads()}threads"


@dataclass
class CompactCalibration:
    """Per block and level: ``"compact"`` or ``"dense"`` plus the two median latencies (ms)."""

    device: str
    choices: dict[str, str] = field(default_factory=dict)
    compact_ms: dict[str, float] = field(default_factory=dict)
    dense_ms: dict[str, float] = field(default_factory=dict)

    def choice(self, block: int, level: Level) -> str | None:
        return self.choices.get(level_key(block, level))

    def record(self, block: int, level: Level, *, compact_ms: float, dense_ms: float) -> None:
        key = level_key(block, level)
        self.compact_ms[key], self.dense_ms[key] = compact_ms, dense_ms
        self.choices[key] = "compact" if compact_ms < dense_ms else "dense"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(dumps_strict(asdict(self)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CompactCalibration:
        try:
            data = json.loads(Path(path).read_text())
            calibration = cls(**data)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"cannot read compact calibration {path}: {error}") from error
        bad = {v for v in calibration.choices.values()} - {"compact", "dense"}
        if bad:
            raise ConfigError(f"compact calibration {path}: unknown choice(s) {sorted(bad)}")
        return calibration
