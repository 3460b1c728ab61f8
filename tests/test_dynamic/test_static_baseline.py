import numpy as np
import pytest
import torch
from dynamic_helpers import CLIP, dynamic_tiny_test, random_train_clips

from dance3d.dance.aap import distillation
from dance3d.dance.static_baseline import (
    even_frames,
    expand,
    finetune_static,
    keep_fraction_for,
    kept_channel_count,
    magnitude_decisions,
    static_mac_fraction,
)
from dance3d.errors import ConfigError


def test_even_frames_spreads_the_kept_frames_from_the_first():
    assert even_frames(16, 8).nonzero()[:, 1].tolist() == list(range(0, 16, 2))
    assert even_frames(8, 3).nonzero()[:, 1].tolist() == [0, 2, 5]
    assert even_frames(4, 4).all()


def test_magnitude_decisions_keep_the_largest_filters_and_half_the_frames():
    model = dynamic_tiny_test()
    decisions = magnitude_decisions(model, 0.5, frame_keep_fraction=0.5)
    for decision, convs, gated in zip(decisions, model.gated_convs, model.gated, strict=True):
        producer = next(c for c in convs if c.side in ("out", "both", "depthwise"))
        norms = model.backbone.get_submodule(producer.name).weight.detach().abs().flatten(1).sum(1)
        kept = decision.channels[0]
        assert int(kept.sum()) == round(0.5 * len(norms))
        assert float(norms[kept].min()) >= float(norms[~kept].max())
        frames = decision.frames.shape[1]
        expected = round(0.5 * frames) if gated.frame_stride is not None else frames
        assert int(decision.frames.sum()) == expected
        assert decision.tiles.all()
    assert any(not d.frames.all() for d in decisions)


@pytest.mark.parametrize("frame_keep", [1.0, 0.5])
def test_keep_fraction_for_inverts_the_mac_accounting(frame_keep):
    model = dynamic_tiny_test()
    half = magnitude_decisions(model, 0.5, frame_keep_fraction=frame_keep)  # exactly half of every block's channels
    assert all(2 * int(d.channels.sum()) == d.channels.shape[1] for d in half)
    with torch.no_grad():
        model(torch.zeros(1, 3, *CLIP), decisions=expand(half, 1))
    measured = float(model.last_mac_fraction[0])
    assert keep_fraction_for(model, measured, frame_keep_fraction=frame_keep) == pytest.approx(0.5)
    if frame_keep < 1.0:  # fewer frames leave room for more channels at the same MACs
        assert keep_fraction_for(model, measured, frame_keep_fraction=frame_keep) > keep_fraction_for(model, measured)


def test_frame_keep_fraction_out_of_range_is_a_clear_error():
    with pytest.raises(ConfigError, match="frame_keep_fraction"):
        magnitude_decisions(dynamic_tiny_test(), 0.5, frame_keep_fraction=0.0)


def test_kept_channel_counts_round_to_the_backend_multiple():
    assert kept_channel_count(32, 0.25) == 8
    assert [kept_channel_count(32, f, multiple=16) for f in (0.1, 0.3, 0.7, 0.8, 1.0)] == [16, 16, 16, 32, 32]
    assert kept_channel_count(64, 0.3, multiple=16) == 16
    assert kept_channel_count(8, 0.1, multiple=16) == 8  # a block narrower than the multiple keeps every channel
    with pytest.raises(ConfigError, match="channel_multiple"):
        kept_channel_count(32, 0.5, multiple=0)


def test_keep_fraction_for_picks_the_cheapest_existing_widths_that_reach_the_budget():
    model = dynamic_tiny_test()  # inner widths 8 and 16: with multiple 8 each block keeps 8 or 16
    costs = {f: static_mac_fraction(model, magnitude_decisions(model, f, channel_multiple=8)) for f in (0.0, 1.0)}
    target = (costs[0.0] + costs[1.0]) / 2  # between the narrowest and the widest widths
    chosen = magnitude_decisions(model, keep_fraction_for(model, target, channel_multiple=8), channel_multiple=8)
    assert all(int(d.channels.sum()) % 8 == 0 for d in chosen)
    cost = static_mac_fraction(model, chosen)
    assert cost >= target
    for other in np.linspace(0.0, 1.0, 21):  # no existing widths reach the budget more cheaply
        other_cost = static_mac_fraction(model, magnitude_decisions(model, float(other), channel_multiple=8))
        assert other_cost < target or other_cost >= cost
    widest = magnitude_decisions(model, keep_fraction_for(model, 2.0, channel_multiple=8), channel_multiple=8)
    assert static_mac_fraction(model, widest) == pytest.approx(costs[1.0])  # out of reach: the widest
    unrounded = magnitude_decisions(model, keep_fraction_for(model, target), channel_multiple=1)
    assert static_mac_fraction(model, unrounded) == pytest.approx(target, abs=0.05)


def test_static_finetune_adds_aaps_distillation_term_when_given_a_teacher():
    model = dynamic_tiny_test()
    decisions = magnitude_decisions(model, 0.5, frame_keep_fraction=0.5)
    train = random_train_clips(8)
    teacher = torch.randn(8, model.backbone.head.out_features, generator=torch.Generator().manual_seed(1)) * 3
    common = {"epochs": 1, "lr": 0.0, "batch_size": 8, "progress": False, "log": lambda line: None}
    plain = finetune_static(model, decisions, train, **common)[0]["loss"]
    ignored = finetune_static(model, decisions, train, teacher=teacher, distill_weight=0.0, **common)[0]["loss"]
    distilled = finetune_static(model, decisions, train, teacher=teacher, distill_weight=0.5, **common)[0]["loss"]
    with torch.no_grad():
        logits = model(train.clips.float(), decisions=expand(decisions, 8))
    assert ignored == pytest.approx(plain)
    assert distilled - plain == pytest.approx(0.5 * float(distillation(logits, teacher, 2.0)), rel=1e-4)
