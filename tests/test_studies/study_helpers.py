"""Helpers: tiny dynamic/dense checkpoints (``tiny-test`` on 8x32x32 moving-digits) and fast study settings."""

from __future__ import annotations

from pathlib import Path

from model_helpers import make_dense

from dance3d.checkpoint import Checkpoint, save_checkpoint
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.dynamic.checkpoint import KIND, dynamic_spec
from studies import StudyConfig

CLIP = (8, 32, 32)
DATA = DataConfig(num_frames=8, height=32, width=32, num_train=16, num_val=16, num_test=16)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}
FAST = dict(latency_warmup=0, latency_repeats=1, eval_batch_size=16, heartbeat_interval_s=1, grace_period_s=2)


def fast_config(**overrides) -> StudyConfig:
    """A study config that measures quickly (one latency repeat, no warm-up)."""
    return StudyConfig(**{**FAST, **overrides})


def dynamic_model(seed: int = 0):
    return convert_model(make_dense(seed=seed), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4)).eval()


def save_dynamic(path: Path, seed: int = 0) -> Path:
    model = dynamic_model(seed)
    spec = dynamic_spec(model, SPEC, backbone_kind="dense")
    return save_checkpoint(Checkpoint.create(KIND, spec, model.state_dict(), data=DATA, classes=MOTION_CLASSES), path)


def save_dense(path: Path, seed: int = 0) -> Path:
    state = make_dense(seed=seed).state_dict()
    return save_checkpoint(Checkpoint.create("dense", SPEC, state, data=DATA, classes=MOTION_CLASSES), path)
