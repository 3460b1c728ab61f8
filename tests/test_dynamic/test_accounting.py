import pytest
import torch
import torch.nn as nn
from dynamic_helpers import CLIP, make_dense
from torch.utils.flop_counter import FlopCounterMode

from dance3d.dynamic import BlockDecision, DynamicConfig, convert_model
from dance3d.dynamic.accounting import MacRecorder
from dance3d.models import create_model
from dance3d.models.builtin import TinyVideoResNet


def flop_counter_macs(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1), (2, 3, 4, 16, 16)),
        (nn.Conv3d(8, 8, (3, 1, 1), padding=(1, 0, 0), groups=8), (1, 8, 4, 6, 6)),
        (nn.Conv3d(8, 16, (1, 3, 3), stride=2, groups=2, bias=False), (3, 8, 5, 9, 9)),
        (nn.Linear(32, 10), (4, 32)),
    ],
)
def test_recorder_matches_flop_counter_on_single_layers(layer, shape):
    x = torch.rand(*shape)
    net = nn.Sequential(layer)
    with torch.no_grad(), MacRecorder(net) as recorder:
        net(x)
    assert sum(recorder.macs.values()) * shape[0] == flop_counter_macs(layer, x)
    assert not net[0]._forward_hooks  # hooks are removed on exit


def test_dense_accounting_matches_flop_counter_on_the_dense_model():
    dense = make_dense("tiny-test")
    x = torch.rand(2, 3, *CLIP)
    expected = flop_counter_macs(dense, x) // 2
    model = convert_model(dense, clip_shape=CLIP)
    with torch.no_grad():
        model(x, decisions=model.full_decisions(2))
    assert model.dense_macs == expected
    assert torch.allclose(model.last_macs, torch.full((2,), float(expected), dtype=model.last_macs.dtype))


def test_single_block_macs_match_hand_computation():
    torch.manual_seed(0)
    net = TinyVideoResNet(4, stem_channels=8, stage_channels=(8,), blocks_per_stage=(1,), stage_strides=((1, 1, 1),))
    model = convert_model(net.eval(), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4, tile_size=8))
    assert model.levels[0].channels == (4, 8) and model.gated[0].grid.rows == 2
    frames = torch.tensor([[1, 0, 1, 0, 1, 0, 1, 0]], dtype=torch.bool)  # 4 of 8 output frames
    channels = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)  # 4 of 8 inner channels
    tiles = torch.tensor([[1, 0, 0, 1]], dtype=torch.bool)  # 2 of 4 tiles of 8x8
    with torch.no_grad():
        model(torch.rand(1, 3, *CLIP), decisions=[BlockDecision(frames, channels, tiles, model.gated[0].grid)])
    positions = 8 * 16 * 16  # stem output / block output: 8 frames x 16 x 16
    stem = 8 * positions * 3 * 27
    conv_dense = 8 * positions * 8 * 27  # conv_a and conv_b each
    head = 4 * 8
    assert model.dense_macs == stem + 2 * conv_dense + head
    gated = 2 * conv_dense * (4 / 8) * (4 / 8) * (2 / 4)
    assert model.last_macs.item() == pytest.approx(stem + gated + head)
    stats = model.clip_stats()[0]
    assert stats["g0.frame_keep"] == 0.5 and stats["g0.channel_keep"] == 0.5 and stats["g0.tile_keep"] == 0.5
    assert stats["mac_fraction"] == pytest.approx((stem + gated + head) / (stem + 2 * conv_dense + head))


def test_controller_macs_are_counted_and_below_two_percent_of_dense():
    for name, clip in (("tiny", (16, 64, 64)), ("tiny-test", CLIP)):
        model = convert_model(create_model(name, num_classes=8).eval(), clip_shape=clip)
        with torch.no_grad():
            model(torch.rand(1, 3, *clip))
        controller_macs = model.controller.macs_per_clip(model.stem_shape)
        linear_macs = flop_counter_macs(model.controller, torch.rand(1, *model.stem_shape))
        assert controller_macs >= linear_macs > 0
        assert controller_macs <= 0.02 * model.dense_macs, name
        assert model.last_macs.item() == pytest.approx(model.dense_macs + controller_macs)
