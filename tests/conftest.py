"""Shared fixtures: tiny data and model settings so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dance3d.data.registry import DataConfig
from dance3d.training.trainer import RunConfig, TrainConfig

TINY_DATA = DataConfig(num_frames=8, height=32, width=32, num_train=48, num_val=16, num_test=24)
TINY_TRAIN = TrainConfig(
    model="tiny-test", epochs=2, batch_size=8, lr=3e-3, num_workers=0, checkpoint_every_steps=2, progress=False
)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_run_config() -> RunConfig:
    return RunConfig(data=TINY_DATA, train=TINY_TRAIN)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory) -> str:
    """A tiny-test checkpoint trained for 2 epochs on tiny moving-digits (shared by CLI tests)."""
    from dance3d.training.trainer import train

    out = tmp_path_factory.mktemp("dense")
    return str(train(RunConfig(data=TINY_DATA, train=TINY_TRAIN), out).checkpoint_path)


@pytest.fixture
def run_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``dance3d ARGS...`` in this process: ``run_cli(*args) -> (exit code, stdout, stderr)``."""
    from dance3d.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
