"""Convolutions, upsampling and group norms computed at a map's kept positions only equal the masked dense ops."""

import pytest
import torch
import torch.nn as nn

from dance3d.copruning.kept_positions import KeptPositions, conv_rows, map_rows, norm_rows, upsample_rows
from dance3d.copruning.tiles import group_norm
from profiling import count_macs


def random_mask(height: int, width: int, *, seed: int) -> torch.Tensor:
    return torch.rand(height, width, generator=torch.Generator().manual_seed(seed)) < 0.4


def masked_map(frames: int, channels: int, mask: torch.Tensor) -> torch.Tensor:
    return torch.randn(frames, channels, *mask.shape) * mask


@pytest.mark.parametrize(("kernel", "stride", "groups"), [(3, 1, 1), (3, 2, 1), (7, 1, 6), (1, 1, 1)])
def test_a_conv_at_the_kept_positions_equals_the_dense_conv_of_the_zero_filled_map(kernel, stride, groups):
    torch.manual_seed(0)
    source_mask = random_mask(12, 10, seed=1)
    x = masked_map(2, 6, source_mask)
    conv = nn.Conv2d(6, 6, kernel, stride=stride, padding=kernel // 2, groups=groups)
    dense = conv(x)
    target_mask = random_mask(*dense.shape[-2:], seed=2)
    source, target = KeptPositions(source_mask), KeptPositions(target_mask)
    rows = map_rows(x)[:, source.flat]
    out = conv_rows(conv, rows, target.taps(source, conv))
    assert out.shape == (2, len(target), 6)
    assert torch.allclose(out, map_rows(dense)[:, target.flat], atol=1e-5)


def test_a_conv_reading_a_whole_map_sees_its_values_and_the_zero_padding_only():
    x = torch.randn(3, 2, 8, 8)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    kept = KeptPositions(random_mask(8, 8, seed=3))
    out = conv_rows(conv, map_rows(x), kept.taps(KeptPositions.whole(8, 8, device=x.device), conv))
    assert torch.allclose(out, map_rows(conv(x))[:, kept.flat], atol=1e-5)


def test_the_conv_executes_the_kept_positions_macs_only():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    source = KeptPositions.whole(10, 10, device=torch.device("cpu"))
    kept = KeptPositions(random_mask(10, 10, seed=4))
    taps = kept.taps(source, conv)
    rows = torch.randn(2, 100, 4)
    counted = count_macs(lambda r: conv_rows(conv, r, taps), rows).macs
    assert counted == 2 * len(kept) * 8 * 4 * 9


@pytest.mark.parametrize("shape", [(6, 6), (5, 7)])
def test_upsampling_at_the_kept_positions_equals_bilinear_upsampling_of_the_zero_filled_map(shape):
    source_mask = random_mask(*shape, seed=5)
    x = masked_map(2, 3, source_mask)
    dense = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)(x)
    target_mask = torch.ones(dense.shape[-2:], dtype=torch.bool)
    target_mask[1::3, ::2] = False  # edges and interior, both parities
    source, target = KeptPositions(source_mask), KeptPositions(target_mask)
    out = upsample_rows(map_rows(x)[:, source.flat], source, target)
    assert torch.allclose(out, map_rows(dense)[:, target.flat], atol=1e-6)


def test_a_group_norm_over_the_rows_takes_its_statistics_over_the_kept_positions():
    mask = random_mask(9, 9, seed=6)
    x = torch.randn(2, 8, 9, 9)
    norm = nn.GroupNorm(4, 8)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    kept = KeptPositions(mask)
    out = norm_rows(norm, map_rows(x)[:, kept.flat])
    reference = group_norm(x, norm, mask[None, None].float())
    assert torch.allclose(out, map_rows(reference)[:, kept.flat], atol=1e-5)


def test_rows_scatter_back_to_a_map_zero_outside_the_kept_positions():
    mask = random_mask(4, 5, seed=7)
    x = masked_map(2, 3, mask)
    kept = KeptPositions(mask)
    assert torch.equal(kept.scatter(map_rows(x)[:, kept.flat]), x)
    assert len(KeptPositions.whole(4, 5, device=x.device)) == 20
