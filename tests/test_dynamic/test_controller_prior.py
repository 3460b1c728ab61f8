"""The untrained controller's prior: frames inside a pause are skipped, a moving clip keeps its frames."""

import torch
from dynamic_helpers import make_dense

from dance3d.dynamic import DynamicConfig, convert_model

FRAMES, SIZE = 16, 32


def moving_square(pause: range = range(0)) -> torch.Tensor:
    """A bright 8x8 square moving 1 px per frame to the right, standing still during ``pause``."""
    clip = torch.zeros(3, FRAMES, SIZE, SIZE)
    x = 4
    for t in range(FRAMES):
        if t > 0 and t not in pause:
            x += 1
        clip[:, t, 12:20, x : x + 8] = 1.0
    return clip


def test_prior_skips_paused_frames_and_keeps_a_moving_clip():
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=DynamicConfig()).eval()
    assert model.controller.temporal_edge == 1  # tiny-test's stem: one 3x3x3 conv with padding 1
    clips = torch.stack([moving_square(), moving_square(range(4, 13))])
    with torch.no_grad():
        model(clips)
    first = model.last_decisions[0]  # full temporal resolution
    assert first.frames[0].all()
    skipped = (~first.frames[1]).nonzero().flatten().tolist()
    assert len(skipped) >= 4 and all(t in range(4, 13) for t in skipped)  # all inside the pause
    assert float(model.last_mac_fraction[1]) < float(model.last_mac_fraction[0])


def test_channel_biases_start_equal_by_default():
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=DynamicConfig())
    for head in model.controller.channel_heads:
        assert torch.all(head.bias == DynamicConfig().init_logit)
