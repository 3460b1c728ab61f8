"""Bytes read/written: executed ops and the analytic per-layer model, both labelled."""

from __future__ import annotations

import torch
from torch import nn

from profiling import count_macs, profile


def test_conv_bytes_executed_and_analytic_agree_for_one_layer() -> None:
    conv = nn.Conv3d(4, 8, kernel_size=3, stride=(2, 1, 1), padding=1)
    counts = count_macs(conv, torch.randn(1, 4, 8, 10, 10))
    x_bytes, w_bytes, b_bytes = 4 * 8 * 10 * 10 * 4, 8 * 4 * 27 * 4, 8 * 4
    out_bytes = 8 * 4 * 10 * 10 * 4
    assert counts.bytes_read == x_bytes + w_bytes + b_bytes == 16_288
    assert counts.bytes_written == out_bytes == 12_800
    assert counts.bytes_source == "executed-ops"
    layer = counts.layer("(root)")
    assert (layer.bytes_read_analytic, layer.bytes_written_analytic) == (16_288, 12_800)


def test_batchnorm_analytic_reads_float_state_but_not_the_step_counter() -> None:
    bn = nn.BatchNorm3d(3).eval()
    counts = count_macs(bn, torch.randn(1, 3, 2, 4, 4))
    activation = 3 * 2 * 4 * 4 * 4
    state = 4 * 3 * 4  # weight, bias, running_mean, running_var (not num_batches_tracked)
    layer = counts.layer("(root)")
    assert layer.bytes_read_analytic == activation + state
    assert layer.bytes_written_analytic == activation
    assert counts.macs == 0


def test_inplace_op_reads_and_writes_its_tensor() -> None:
    counts = count_macs(nn.ReLU(inplace=True), torch.randn(2, 5))
    assert (counts.bytes_read, counts.bytes_written) == (40, 40)


def test_views_and_allocations_move_nothing() -> None:
    def reshape_only(x: torch.Tensor) -> torch.Tensor:
        return x.view(4, 3).t()[1:].unsqueeze(0)

    counts = count_macs(reshape_only, torch.randn(12))
    assert counts.bytes_read == counts.bytes_written == 0
    assert counts.layer("(root)").module_type == "function"


def test_report_labels_each_byte_count_with_its_source() -> None:
    report = profile(nn.Linear(8, 2), torch.randn(1, 8), meter=None, warmup=0, repeats=1)
    assert report.bytes_source == "executed-ops"
    assert report.analytic_source == "analytic"
    assert report.bytes_read == (8 + 16 + 2) * 4
    assert report.analytic_bytes_read == report.bytes_read
    assert report.analytic_bytes_written == report.bytes_written == 2 * 4
