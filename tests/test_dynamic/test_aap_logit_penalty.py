"""AAP's channel-logit penalty: the loss term it adds, and that it keeps the logits near zero."""

import copy

import pytest
import torch
from dynamic_helpers import dynamic_tiny_test, random_train_clips

from dance3d.dance.aap import AapSettings, channel_logit_magnitude, train_aap
from dance3d.dance.data import ClipCache
from dance3d.dynamic import set_execution_mode


def _magnitude(model, clips: ClipCache) -> float:
    set_execution_mode(model, "simulate")
    with torch.no_grad():
        model(clips.clips.float())
    return float(channel_logit_magnitude(model))


def test_the_penalty_adds_its_weight_times_the_mean_squared_channel_logit():
    model, train = dynamic_tiny_test(), random_train_clips()
    start = _magnitude(model, train)
    assert start > 1.0  # the untrained controller's channel logits start near init_logit (3)
    common = {"epochs": 1, "batch_size": 16, "lr": 1e-12, "distill_weight": 0.0, "progress": False}
    plain = train_aap(copy.deepcopy(model), train, AapSettings(**common), log=lambda line: None)[0]["loss"]
    penalised = AapSettings(**common, channel_logit_penalty=0.5)
    loss = train_aap(copy.deepcopy(model), train, penalised, log=lambda line: None)[0]["loss"]
    assert loss - plain == pytest.approx(0.5 * start, rel=1e-4)


def test_the_penalty_keeps_channel_logits_nearer_zero():
    model, train = dynamic_tiny_test(), random_train_clips()
    common = {"epochs": 3, "batch_size": 8, "lr": 0.05, "target_mac_fraction": 0.3, "progress": False}
    magnitudes = {}
    for penalty in (0.0, 1.0):
        trained = copy.deepcopy(model)
        train_aap(trained, train, AapSettings(**common, channel_logit_penalty=penalty), log=lambda line: None)
        magnitudes[penalty] = _magnitude(trained, train)
    assert magnitudes[1.0] < 0.5 * magnitudes[0.0]


def test_a_negative_penalty_is_rejected():
    with pytest.raises(ValueError, match="channel_logit_penalty"):
        AapSettings(channel_logit_penalty=-0.1)
