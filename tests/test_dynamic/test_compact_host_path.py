"""The compact forward's cheap paths: one flat logit tensor, cached offsets, MACs counted on access, 1x1x1 convs."""

import pytest
import torch
import torch.nn.functional as F
from dynamic_helpers import frame_sensitive, make_dense, partly_static_clip

from controllers.stem_controller import _average_pool
from dance3d.dynamic import DynamicConfig, apply_knobs, convert_model, knob_space, set_execution_mode
from dance3d.dynamic.compact_backend import conv3d
from profiling import count_macs

CLIP = (8, 32, 32)


def _model():
    config = DynamicConfig(channel_multiple=4, tile_size=8)
    return convert_model(make_dense("tiny-test-deep"), clip_shape=CLIP, config=config).eval()


@pytest.mark.parametrize("size", [(32, 32), (30, 37)])
def test_strided_average_pool_equals_avg_pool3d(size):
    x = torch.randn(2, 5, 3, *size, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_average_pool(x, 4), F.avg_pool3d(x, (1, 4, 4)))


def test_controller_layout_partitions_the_flat_logits_gate_by_gate():
    model = _model()
    stem = torch.randn(3, model.controller.stem_channels, *model.stem_shape[1:])
    out = model.controller(stem)
    spans = [
        (s.start, s.stop) for per_gate in (out.layout.frames, out.layout.channels, out.layout.tiles) for s in per_gate
    ]
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == out.layout.total == out.logits.shape[1]
    assert all(a[1] == b[0] for a, b in zip(spans[:-1], spans[1:], strict=True))  # no gap, no overlap
    for spec, frames, channels, tiles in zip(
        model.gate_specs, out.frame_logits, out.channel_logits, out.tile_logits, strict=True
    ):
        assert frames.shape == (3, spec.num_frames) and tiles.shape == (3, spec.num_tiles)
        assert channels.shape == (3, spec.num_channels)
    out.channel_logits[-1].sum().backward()  # a per-gate view reaches that gate's own head only
    assert model.controller.channel_heads[-1].weight.grad is not None
    assert model.controller.channel_heads[0].weight.grad.abs().sum() == 0


def test_changed_offsets_reach_the_next_compact_forward():
    model = _model()
    clips = torch.rand(2, 3, *CLIP, generator=torch.Generator().manual_seed(1))
    set_execution_mode(model, "compact")
    with torch.no_grad():
        model(clips)
        kept_before = [d.channels.sum().item() for d in model.last_decisions]
        apply_knobs(model, {k.name: -8.0 for k in knob_space(model) if k.axis == "channels"})
        model(clips)
        compact = [d.channels for d in model.last_decisions]
        set_execution_mode(model, "simulate")
        model(clips)
    for got, want in zip(compact, model.last_decisions, strict=True):
        assert torch.equal(got, want.channels)
    assert sum(c.sum().item() for c in compact) < sum(kept_before)


def test_compact_macs_are_those_of_the_latest_forward():
    config = DynamicConfig(channel_multiple=4)
    model = frame_sensitive(convert_model(make_dense("tiny-test"), clip_shape=CLIP, config=config).eval())
    first, second = partly_static_clip(1, 2)[None], partly_static_clip(3, 8)[None]  # static from frame 2 / 8 on
    with torch.no_grad():
        set_execution_mode(model, "simulate")
        model(second)
        expected, expected_blocks = model.last_macs.clone(), [m.clone() for m in model.last_block_macs]
        set_execution_mode(model, "compact")
        model(first)
        first_macs = model.last_macs.clone()
        model(second)  # last_macs not read in between: counted from this forward's decisions on access
    torch.testing.assert_close(model.last_macs, expected)
    for got, want in zip(model.last_block_macs, expected_blocks, strict=True):
        torch.testing.assert_close(got, want)
    assert float(first_macs) < float(expected)  # the clip static from frame 2 on skipped more


@pytest.mark.parametrize(("batch", "stride", "bias"), [(1, (1, 2, 2), True), (3, (2, 2, 2), False), (2, 1, True)])
def test_pointwise_conv_is_the_same_convolution(batch, stride, bias):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 6, 5, 9, 8, generator=generator)
    weight = torch.randn(7, 6, 1, 1, 1, generator=generator)
    b = torch.randn(7, generator=generator) if bias else None
    torch.testing.assert_close(conv3d(x, weight, b, stride=stride), F.conv3d(x, weight, b, stride=stride))
    assert (
        count_macs(lambda t: conv3d(t, weight, b, stride=stride), x).macs
        == count_macs(lambda t: F.conv3d(t, weight, b, stride=stride), x).macs
    )
