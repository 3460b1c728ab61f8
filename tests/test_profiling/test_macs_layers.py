"""MAC counts of single layers against hand-computed integers, and against FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from profiling import count_macs, per_clip_macs


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def test_conv3d_with_temporal_stride() -> None:
    conv = nn.Conv3d(4, 8, kernel_size=3, stride=(2, 1, 1), padding=1)
    x = torch.randn(1, 4, 8, 10, 10)
    # output 1x8x4x10x10 = 3200 positions, each 4 in-channels x 27 taps
    expected = 8 * 4 * 10 * 10 * (4 * 27)
    counts = count_macs(conv, x)
    assert counts.macs == expected == 345_600
    assert counts.analytic_macs == expected
    assert flop_counter_macs(conv, x) == expected


def test_depthwise_conv3d() -> None:
    conv = nn.Conv3d(6, 6, kernel_size=3, padding=1, groups=6)
    x = torch.randn(1, 6, 4, 8, 8)
    expected = (6 * 4 * 8 * 8) * (1 * 27)  # one input channel per group
    assert count_macs(conv, x).macs == expected == 41_472
    assert flop_counter_macs(conv, x) == expected


def test_two_plus_one_d_pair_per_layer() -> None:
    pair = nn.Sequential(
        nn.Conv3d(3, 5, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.Conv3d(5, 7, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
    )
    x = torch.randn(1, 3, 4, 6, 6)
    spatial = (5 * 4 * 6 * 6) * (3 * 9)  # 19_440
    temporal = (7 * 4 * 6 * 6) * (5 * 3)  # 15_120
    counts = count_macs(pair, x)
    assert counts.layer("0").macs == spatial == 19_440
    assert counts.layer("1").macs == temporal == 15_120
    assert counts.macs == 34_560
    assert counts.layer("0").macs_analytic == spatial
    assert counts.layer("1").module_type == "Conv3d"


def test_linear_bias_is_not_a_mac() -> None:
    linear = nn.Linear(10, 4)
    counts = count_macs(linear, torch.randn(3, 10))
    assert counts.macs == 3 * 4 * 10 == 120
    assert counts.analytic_macs == 120
    ops = {op.op: op for op in counts.operators}
    assert ops["addmm"].macs == 120
    assert ops["t"].macs == ops["t"].bytes_read == 0  # the weight transpose is a view


def test_linear_on_3d_input_decomposes_to_matmul() -> None:
    linear = nn.Linear(6, 5, bias=False)
    counts = count_macs(linear, torch.randn(2, 7, 6))
    assert counts.macs == 2 * 7 * 5 * 6 == 420


def test_conv_transpose3d() -> None:
    deconv = nn.ConvTranspose3d(4, 2, kernel_size=2, stride=2)
    x = torch.randn(1, 4, 2, 3, 3)
    expected = (4 * 2 * 3 * 3) * (2 * 8)  # each input element feeds Cout x k^3 outputs
    counts = count_macs(deconv, x)
    assert counts.macs == expected == 1_152
    assert counts.analytic_macs == expected
    assert flop_counter_macs(deconv, x) == expected


class SlicedConv(nn.Module):
    """Runs half the frames through half the filters functionally, as compact execution does."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 3, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv3d(x[:, :, ::2], self.weight[:8])


def test_functional_sliced_conv_counts_what_executes() -> None:
    x = torch.randn(1, 3, 8, 8, 8)
    counts = count_macs(SlicedConv(), x)
    # x[:, :, ::2] -> 1x3x4x8x8; 8 filters, no padding -> output 1x8x2x6x6 = 576 positions
    assert counts.macs == 576 * (3 * 27) == 46_656
    # a module-level (hook) count cannot see the functional call
    assert counts.analytic_macs == 0
    conv = {op.op: op for op in counts.operators}["convolution"]
    assert conv.bytes_read == (3 * 4 * 8 * 8 + 8 * 3 * 27) * 4  # the sliced views only
    assert conv.bytes_written == 576 * 4
    assert {op.op: op.bytes_read for op in counts.operators}["slice"] == 0


def test_matmul_family_and_attention() -> None:
    a, b = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    assert count_macs(lambda x, y: torch.einsum("bij,bjk->bik", x, y), (a, b)).macs == 2 * 3 * 4 * 5
    assert count_macs(torch.matmul, (torch.randn(3, 4), torch.randn(4))).macs == 12  # mv
    assert count_macs(torch.matmul, (torch.randn(4), torch.randn(4))).macs == 4  # dot
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 4)
    sdpa = count_macs(F.scaled_dot_product_attention, (q, k, v))
    assert sdpa.macs == 1 * 2 * 5 * 6 * (8 + 4)  # QK^T plus AV


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 2, kernel_size=1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)) + x


def test_ops_go_to_the_innermost_module_and_layers_sum_to_total() -> None:
    model = nn.Sequential(Residual(), nn.Flatten(), nn.Linear(2 * 2 * 3 * 3, 3))
    x = torch.randn(1, 2, 2, 3, 3)
    counts = count_macs(model, x)
    assert counts.layer("0.conv").macs == 36 * 2
    assert counts.layer("0").macs == 0
    assert counts.layer("2").macs == 3 * 36
    activation_bytes = 36 * 4
    # the residual add runs in Residual.forward itself: 2 tensors read, 1 written
    assert counts.layer("0").bytes_read == 2 * activation_bytes
    assert counts.layer("0").bytes_written == activation_bytes
    assert counts.layer("0").macs_analytic is None  # not a leaf: not modelled
    assert sum(layer.macs for layer in counts.layers) == counts.macs
    assert sum(layer.bytes_read for layer in counts.layers) == counts.bytes_read
    assert counts.layer("0.conv").calls == 1


class SkipPositiveClips(nn.Module):
    """A dynamic model: clips with a positive mean skip the convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].repeat(1, 4, 1, 1, 1) if x.mean() > 0 else self.conv(x)


def test_dynamic_model_gets_per_clip_counts() -> None:
    clips = torch.stack([torch.ones(3, 2, 4, 4), -torch.ones(3, 2, 4, 4)])
    assert per_clip_macs(SkipPositiveClips(), clips) == [0, 4 * 2 * 4 * 4 * 3]


def test_batch_size_and_macs_per_clip() -> None:
    counts = count_macs(nn.Conv3d(1, 1, 1, bias=False), torch.randn(4, 1, 2, 2, 2))
    assert counts.batch_size == 4
    assert counts.macs == 32
    assert counts.macs_per_clip == 8


def test_unknown_layer_name_is_a_clear_error() -> None:
    counts = count_macs(nn.Conv3d(1, 1, 1), torch.randn(1, 1, 1, 1, 1))
    with pytest.raises(KeyError, match="no layer 'nope'"):
        counts.layer("nope")


def test_scripted_submodule_is_counted_under_its_parent() -> None:
    model = nn.Sequential(torch.jit.script(nn.Conv3d(1, 2, kernel_size=1)), nn.ReLU())
    counts = count_macs(model, torch.randn(1, 1, 2, 2, 2))
    assert counts.macs == 2 * 8
    assert counts.layer("(root)").macs == 16  # scripted modules take no hooks
