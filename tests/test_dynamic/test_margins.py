"""decision_margins: the margins are exactly the logit shifts that change a kept count."""

import math

import pytest
import torch
from dynamic_helpers import make_dense

from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode
from dance3d.dynamic.margins import decision_margins
from dance3d.errors import ConfigError

FRAMES, SIZE = 8, 32


def _model_with_fixed_channel_logits():
    """Channel logits that do not depend on the clip: a spread of biases, zero context weights."""
    config = DynamicConfig(channel_multiple=1)
    model = convert_model(make_dense("tiny-test"), clip_shape=(FRAMES, SIZE, SIZE), config=config).eval()
    with torch.no_grad():
        for head in model.controller.channel_heads:
            head.weight.zero_()
            head.bias.copy_(torch.linspace(3.0, -4.0, head.bias.numel()))
    return model


def _kept_channels(model, clips) -> list[int]:
    with torch.no_grad():
        model(clips)
    return [int(d.kept_channels[0]) for d in model.last_decisions]


def test_margins_are_the_offsets_that_move_each_count_a_level():
    model = _model_with_fixed_channel_logits()
    clips = torch.rand(3, 3, FRAMES, SIZE, SIZE)
    table = decision_margins(model, clips)
    assert list(table["block"]) == list(range(len(model.gate_specs)))
    assert (table["clip_std"] == 0).all() and (table["margin_in_clip_stds"] == math.inf).all()
    base = _kept_channels(model, clips)
    assert all(row.kept_counts == [base[row.block]] for row in table.itertuples())
    for row in table.itertuples():
        levels = row.levels
        for margin, step in ((row.up_margin, +1), (row.down_margin, -1)):
            if math.isnan(margin):
                continue
            assert margin > 0
            model.logit_offsets[row.block, 1] = step * (margin - 1e-3)
            assert _kept_channels(model, clips)[row.block] == base[row.block]  # not quite: no change
            model.logit_offsets[row.block, 1] = step * (margin + 1e-3)
            moved = _kept_channels(model, clips)[row.block]
            assert levels.index(moved) == levels.index(base[row.block]) + step  # just past it: one level
            model.logit_offsets.zero_()


def test_margins_follow_the_run_time_offsets_and_see_clip_spread():
    model = _model_with_fixed_channel_logits()
    clips = torch.rand(4, 3, FRAMES, SIZE, SIZE)
    before = decision_margins(model, clips)
    model.logit_offsets[0, 1] = -0.25  # smaller than the gap to either neighbour of the kept count
    after = decision_margins(model, clips)
    assert after.loc[0, "up_margin"] == pytest.approx(before.loc[0, "up_margin"] + 0.25)
    assert after.loc[0, "down_margin"] == pytest.approx(before.loc[0, "down_margin"] - 0.25)
    model.logit_offsets.zero_()
    with torch.no_grad():
        model.controller.channel_heads[0].weight.normal_(std=1.0)  # the context now moves the logits
    spread = decision_margins(model, clips)
    assert spread.loc[0, "clip_std"] > 0 and spread.loc[1, "clip_std"] == 0


def test_decision_margins_rejects_a_bad_axis_and_a_single_clip():
    model = _model_with_fixed_channel_logits()
    with pytest.raises(ConfigError, match="axis"):
        decision_margins(model, torch.rand(2, 3, FRAMES, SIZE, SIZE), axis="pixels")
    with pytest.raises(ConfigError, match="at least 2 clips"):
        decision_margins(model, torch.rand(1, 3, FRAMES, SIZE, SIZE))


def test_margins_read_the_forwards_own_controller_run_in_compact_mode_too():
    model = _model_with_fixed_channel_logits()
    with torch.no_grad():
        model.controller.channel_heads[0].weight.normal_(std=1.0)
    clips = torch.rand(4, 3, FRAMES, SIZE, SIZE)
    simulated = decision_margins(model, clips)
    set_execution_mode(model, "compact")
    compact = decision_margins(model, clips)
    assert compact.drop(columns="levels").equals(simulated.drop(columns="levels"))
    assert list(compact["levels"]) == list(simulated["levels"])
