"""AAP's phases: the controller alone, then jointly with the backbone."""

import torch
from dynamic_helpers import dynamic_tiny_test, random_train_clips

from dance3d.dance.aap import AapSettings, train_aap

COMMON = {"batch_size": 8, "lr": 0.05, "joint_lr": 0.01, "target_mac_fraction": 0.3, "progress": False}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
