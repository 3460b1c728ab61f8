"""Whole video models: the dispatch count agrees with a module-shape count and with FlopCounterMode."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from profiling import MacCount, count_macs


def _r3d_18() -> tuple[nn.Module, torch.Tensor]:
    from torchvision.models.video import r3d_18

    return r3d_18(), torch.randn(1, 3, 8, 32, 32)


def _r2plus1d_18() -> tuple[nn.Module, torch.Tensor]:
    from torchvision.models.video import r2plus1d_18

    return r2plus1d_18(), torch.randn(1, 3, 8, 32, 32)


def _x3d() -> tuple[nn.Module, torch.Tensor]:
    from pytorchvideo.models.x3d import create_x3d

    model = create_x3d(input_clip_length=4, input_crop_size=32, model_num_class=5, head_activation=None)
    return model, torch.randn(1, 3, 4, 32, 32)


BUILDERS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "r3d_18": _r3d_18,
    "r2plus1d_18": _r2plus1d_18,
    "x3d": _x3d,
}


@functools.cache
def counted(name: str) -> tuple[nn.Module, torch.Tensor, MacCount]:
    """Each model is built and counted once per session (building is the slow part)."""
    torch.manual_seed(0)
    model, clip = BUILDERS[name]()
    model.eval()
    return model, clip, count_macs(model, clip)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_video_model_counts_agree(name: str) -> None:
    model, clip, counts = counted(name)
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(clip)
    assert counts.macs > 0
    assert counts.macs == flops.get_total_flops() // 2
    assert counts.macs == counts.analytic_macs
    convs = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv3d, nn.Linear))]
    assert convs
    for name in convs:
        layer = counts.layer(name)
        assert layer.macs == layer.macs_analytic, name
    # executed traffic includes everything the module model sees (plus ops outside leaf modules)
    assert counts.bytes_read >= counts.analytic_bytes_read > 0
    assert counts.bytes_written >= counts.analytic_bytes_written > 0


def test_r3d_18_stem_by_hand() -> None:
    counts = counted("r3d_18")[2]
    # stem: Conv3d(3, 64, k=(3,7,7), stride=(1,2,2), pad=(1,3,3)) on 8x32x32 -> 64x8x16x16
    assert counts.layer("stem.0").macs == (64 * 8 * 16 * 16) * (3 * 3 * 7 * 7) == 57_802_752
