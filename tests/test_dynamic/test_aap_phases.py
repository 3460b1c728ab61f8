"""AAP's phases: the controller alone, then jointly with the backbone, then the backbone past its stem alone."""

import copy

import pytest
import torch
from dynamic_helpers import dynamic_tiny_test, random_train_clips

from dance3d.dance.aap import AapSettings, train_aap

COMMON = {"batch_size": 8, "lr": 0.05, "joint_lr": 0.01, "target_mac_fraction": 0.3, "progress": False}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_settle_trains_the_backbone_past_its_stem_alone():
    model, train = dynamic_tiny_test(), random_train_clips()
    stem = lambda m: m.backbone.get_submodule(m.stem_name)  # noqa: E731
    blocks = lambda m: torch.nn.ModuleList(m.gated)  # noqa: E731
    start_stem, start_blocks = _state(stem(model)), _state(blocks(model))

    controller_only = copy.deepcopy(model)
    train_aap(controller_only, train, AapSettings(epochs=1, **COMMON), log=lambda line: None)
    settled = copy.deepcopy(model)
    history = train_aap(settled, train, AapSettings(epochs=1, settle_epochs=2, **COMMON), log=lambda line: None)

    assert [row["phase"] for row in history] == ["controller", "settle", "settle"]
    assert _same(_state(settled.controller), _state(controller_only.controller))  # frozen while settling
    assert not _same(_state(settled.controller), _state(model.controller))
    assert _same(_state(stem(settled)), start_stem)  # the stem feeds the controller: frozen too
    assert not _same(_state(blocks(settled)), start_blocks)
    assert all(p.requires_grad for p in settled.parameters())  # every parameter trainable again afterwards


def test_joint_phase_trains_stem_blocks_and_controller():
    model, train = dynamic_tiny_test(), random_train_clips()
    before = _state(model)
    history = train_aap(model, train, AapSettings(epochs=1, joint_epochs=1, **COMMON), log=lambda line: None)
    assert [row["phase"] for row in history] == ["controller", "joint"]
    after = _state(model)
    changed = {name.split(".")[0] for name in after if not torch.equal(after[name], before[name])}
    assert {"backbone", "controller"} <= changed
    stem_prefix = f"backbone.{model.stem_name}."
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith(stem_prefix))


def test_negative_settle_epochs_are_rejected():
    with pytest.raises(ValueError, match="settle_epochs >= 0"):
        AapSettings(settle_epochs=-1)
