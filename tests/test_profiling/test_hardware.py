"""Checks that need real hardware; skipped cleanly where it is absent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from profiling import measure_latency, profile, select_meter
from profiling.meters import JetsonRailMeter, discover_rails

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_cuda_latency_uses_events() -> None:
    conv = nn.Conv3d(3, 8, 3, padding=1).cuda()
    stats = measure_latency(conv, torch.randn(1, 3, 8, 32, 32, device="cuda"), warmup=3, repeats=10)
    assert stats.timer == "cuda-events" and stats.device == "cuda:0"
    assert 0 < stats.median_ms <= stats.p90_ms


@pytest.mark.gpu
@needs_cuda
def test_profile_on_gpu_with_the_best_meter() -> None:
    pytest.importorskip("pynvml")
    selection = select_meter("cuda:0")
    report = profile(nn.Conv3d(3, 8, 3, padding=1), torch.randn(1, 3, 8, 32, 32), device="cuda", repeats=10)
    assert report.macs == 8 * 8 * 32 * 32 * 3 * 27
    if selection.ok:
        assert report.energy_status == "ok" and report.energy_j > 0 and report.energy_window_s >= 1.0
    else:
        assert report.energy_status.startswith("unavailable: ")


@pytest.mark.jetson
@pytest.mark.skipif(not discover_rails("/"), reason="no INA3221 rails: not a Jetson")
def test_jetson_rails_measure_board_power() -> None:
    meter = JetsonRailMeter()
    assert meter.probe().ok
    with meter.window() as window:
        torch.randn(256, 256) @ torch.randn(256, 256)
    assert window.power_w > 0
