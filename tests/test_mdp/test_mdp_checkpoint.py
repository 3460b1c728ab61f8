"""Pruned checkpoints: save -> load_model -> same outputs, directly and through the trainer's start hook."""

from dataclasses import replace

import torch
from mdp_helpers import randomize_bn

from dance3d.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dance3d.loading import load_model
from dance3d.mdp.checkpoint import KIND, pruned_spec
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import magnitude_importance
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan
from dance3d.models import create_model
from dance3d.training.trainer import RunConfig, StartModel, train

CLIP = (3, 8, 32, 32)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}


def _pruned():
    torch.manual_seed(0)
    dense = randomize_bn(create_model("tiny-test", num_classes=8)).eval()
    structure = extract_structure(dense, CLIP)
    widths = {g: max(1, info.width // 2) for g, info in structure.groups.items()}
    widths["blocks.1.conv_a"] = 0
    plan = PrunePlan(widths, ("blocks.1",))
    keep = magnitude_importance(structure).keep_indices(plan.widths)  # not the first channels
    assert any(not torch.equal(idx, torch.arange(len(idx))) for idx in keep.values())
    return materialize(structure, plan, keep=keep).eval(), plan


def test_save_and_load_model_gives_the_same_outputs(tmp_path, tiny_run_config):
    model, plan = _pruned()
    spec, classes = pruned_spec(SPEC, CLIP, plan), [str(i) for i in range(8)]
    checkpoint = Checkpoint.create(KIND, spec, model.state_dict(), data=tiny_run_config.data, classes=classes)
    path = save_checkpoint(checkpoint, tmp_path / "model.pt")
    loaded = load_model(path)
    assert loaded.kind == "pruned"
    clip = torch.randn(2, *CLIP)
    with torch.no_grad():
        assert torch.equal(loaded.model(clip), model(clip))
    assert "blocks.1.conv_a.weight" not in loaded.model.state_dict()


def test_trainer_start_hook_fine_tunes_and_records_the_pruned_kind(tmp_path, tiny_run_config):
    model, plan = _pruned()
    data = replace(tiny_run_config.data, num_train=16, num_val=8)
    config = RunConfig(data=data, train=replace(tiny_run_config.train, epochs=1))
    start = StartModel(model, KIND, pruned_spec(SPEC, CLIP, plan))
    result = train(config, tmp_path / "run", start=start)
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint["kind"] == "pruned" and checkpoint["model"]["widths"] == plan.widths
    assert len(result.history) == 1
    loaded = load_model(result.checkpoint_path)
    clip = torch.randn(2, *CLIP)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.model(clip), model(clip), atol=1e-6)
