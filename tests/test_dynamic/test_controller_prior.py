"""The untrained controller's prior: frames inside a pause are skipped, a moving clip keeps its frames."""

import pytest
import torch
from dynamic_helpers import make_dense

from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode

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


def test_negative_channel_bias_spread_is_rejected():
    with pytest.raises(ValueError, match="channel_bias_spread"):
        DynamicConfig(channel_bias_spread=-1.0)


def test_spread_channel_biases_start_ranked_by_filter_norm_so_a_shift_drops_channels_one_level_at_a_time():
    fractions = tuple(k / 8 for k in range(1, 9))
    config = DynamicConfig(channel_keep_fractions=fractions, channel_multiple=1, channel_bias_spread=3.0)
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=config).eval()
    clip = moving_square()[None]
    norms = model.channel_filter_norms()
    with torch.no_grad():  # the starting biases alone decide (the context weights start small, not zero)
        for head in model.controller.channel_heads:
            head.weight.zero_()
    for head, gate_norms in zip(model.controller.channel_heads, norms, strict=True):
        assert torch.equal(head.bias.argsort(descending=True), gate_norms.argsort(descending=True))
        spread = float((head.bias.max() - head.bias.min()).detach())
        assert spread == pytest.approx(config.channel_bias_spread * (1 - 1 / len(gate_norms)))
    kept_counts = []
    for shift in torch.linspace(0.0, config.init_logit, 9).tolist():
        model.logit_offsets[:, 1] = -shift
        with torch.no_grad():
            model(clip)
        counts = []
        for decision, gate_norms in zip(model.last_decisions, norms, strict=True):
            kept = decision.channels[0]
            count = int(kept.sum())
            assert torch.equal(kept.nonzero().flatten().sort().values, gate_norms.topk(count).indices.sort().values)
            counts.append(count)
        kept_counts.append(counts)
    assert kept_counts[0] == [spec.num_channels for spec in model.gate_specs]  # untrained: every channel kept
    for gate in range(len(model.gate_specs)):
        per_shift = [counts[gate] for counts in kept_counts]
        assert per_shift == sorted(per_shift, reverse=True)
        assert len(set(per_shift)) >= 5  # the count steps down level by level, not all at once


def test_channel_context_shift_is_opt_in_and_starts_neutral():
    plain = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=DynamicConfig())
    assert plain.controller.channel_shift is None
    torch.manual_seed(0)
    config = DynamicConfig(channel_context_shift=True)
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=config)
    assert len(model.controller.channel_shift) == len(model.gate_specs)
    assert model.controller_macs_per_clip > plain.controller_macs_per_clip  # its linear layers are counted
    for head in model.controller.channel_shift:
        assert torch.all(head.bias == 0) and float(head.weight.detach().abs().max()) < 0.1


def test_channel_context_shift_moves_a_gates_whole_channel_count_per_clip():
    config = DynamicConfig(channel_context_shift=True, channel_multiple=1)
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=config).eval()
    clips = torch.stack([moving_square(), moving_square(range(4, 13))])
    controller = model.controller
    seen = []
    hook = controller.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    with torch.no_grad():
        model(clips)
    hook.remove()
    stem = seen[0]
    with torch.no_grad():
        before = [out.clone() for out in controller(stem).channel_logits]
        head = controller.channel_shift[0]
        head.bias.fill_(-10.0)  # a constant shift: every clip, every channel of gate 0 drops by 10
        after = controller(stem).channel_logits
    assert torch.allclose(after[0], before[0] - 10.0, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(after[1:], before[1:], strict=True))
    with torch.no_grad():
        model(clips)
    assert int(model.last_decisions[0].kept_channels.max()) == model.levels[0].channels[0]  # the lowest level


def test_channel_context_shift_gets_gradients_in_train_mode():
    config = DynamicConfig(channel_context_shift=True)
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=config)
    set_execution_mode(model, "train")
    clips = torch.stack([moving_square(), moving_square(range(4, 13))])
    (model(clips).logsumexp(1).sum() + model.last_mac_fraction.sum()).backward()
    for head in model.controller.channel_shift:
        assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
