"""Run-time knobs: per-stage logit offsets change decisions (and MACs) monotonically, 0 = as trained."""

import pytest
import torch
from dynamic_helpers import CLIP, dynamic_tiny_test

from dance3d.dynamic import apply_knobs, current_knobs, knob_space
from dance3d.errors import ConfigError


def _mac_fraction(model, clips) -> float:
    with torch.no_grad():
        model(clips)
    return float(model.last_mac_fraction.mean())


def test_knob_space_groups_blocks_into_stages_and_skips_axes_without_choice():
    model = dynamic_tiny_test()
    knobs = knob_space(model)
    names = [k.name for k in knobs]
    assert names and len(names) == len(set(names))
    covered = sorted(b for k in knobs if k.axis == "frames" for b in k.blocks)
    assert covered == list(range(len(model.gate_specs)))
    for knob in knobs:
        assert any(len(getattr(model.levels[b], knob.axis)) > 1 for b in knob.blocks)
        assert len({model.gate_specs[b] for b in knob.blocks}) == 1


def test_offsets_move_mac_fraction_and_reset_to_trained_behaviour():
    model = dynamic_tiny_test()
    clips = torch.rand(4, 3, *CLIP, generator=torch.Generator().manual_seed(0))
    baseline = _mac_fraction(model, clips)
    everything = {k.name: -8.0 for k in knob_space(model)}
    apply_knobs(model, everything)
    assert current_knobs(model) == everything
    low = _mac_fraction(model, clips)
    apply_knobs(model, {})
    assert _mac_fraction(model, clips) == pytest.approx(baseline)
    assert low < baseline - 0.2


def test_bad_knobs_are_rejected_with_the_known_names():
    model = dynamic_tiny_test()
    with pytest.raises(ConfigError, match="unknown knob"):
        apply_knobs(model, {"stage9.frames_offset": 1.0})
    name = knob_space(model)[0].name
    with pytest.raises(ConfigError, match="NaN"):
        apply_knobs(model, {name: float("nan")})
