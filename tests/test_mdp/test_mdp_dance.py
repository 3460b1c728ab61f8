"""Static then dynamic: an MDP-pruned checkpoint through 'dance3d ava' and 'aap', then 'eval' of the result."""

import json

import pytest
import torch
from mdp_helpers import randomize_bn

from dance3d.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dance3d.cli.main import main
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model
from dance3d.loading import load_model
from dance3d.mdp.checkpoint import KIND, RemovedBlock, build_pruned_backbone, pruned_spec
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import magnitude_importance
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan
from dance3d.models import create_model

CLIP = (3, 4, 32, 32)
SPEC = {"name": "tiny-test", "num_classes": len(MOTION_CLASSES), "options": {}}
DATA = DataConfig(num_frames=4, height=32, width=32, num_train=16, num_val=8, num_test=8)
SHRINK = [f"--set=data.{k}={getattr(DATA, k)}" for k in ("num_frames", "num_train", "num_val", "num_test")]


def _pruned(removed: tuple[str, ...] = ("blocks.1", "blocks.2")):
    """``tiny-test`` at about half width, an identity-shortcut and a projection-shortcut block removed."""
    torch.manual_seed(0)
    dense = randomize_bn(create_model("tiny-test", num_classes=len(MOTION_CLASSES))).eval()
    structure = extract_structure(dense, CLIP)
    gone = {g for b in removed for g in structure.blocks[b].groups}
    widths = {g: 0 if g in gone else max(1, info.width // 2 + 3) for g, info in structure.groups.items()}
    plan = PrunePlan(widths, removed)
    keep = magnitude_importance(structure).keep_indices(plan.widths)
    return materialize(structure, plan, keep=keep).eval(), plan


def test_pruned_backbone_is_the_materialised_model_as_a_module_tree():
    graph, plan = _pruned()
    tree = build_pruned_backbone(pruned_spec(SPEC, CLIP, plan)).eval()
    tree.load_state_dict(graph.state_dict())  # strict: the same keys and shapes
    assert isinstance(tree.blocks[1], RemovedBlock) and isinstance(tree.blocks[2], RemovedBlock)
    clips = torch.randn(2, *CLIP)
    dynamic = convert_model(tree, clip_shape=CLIP[1:], config=DynamicConfig(channel_multiple=1)).eval()
    assert dynamic.block_names == ["blocks.0", "blocks.3"]
    assert [s.num_channels for s in dynamic.gate_specs] == [plan.widths[f"blocks.{i}.conv_a"] for i in (0, 3)]
    with torch.no_grad():
        expected = graph(clips)
        assert torch.allclose(dynamic(clips, decisions=dynamic.full_decisions(2)), expected, atol=1e-5)


@pytest.fixture
def pruned_checkpoint(tmp_path):
    model, plan = _pruned()
    checkpoint = Checkpoint.create(
        KIND, pruned_spec(SPEC, CLIP, plan), model.state_dict(), data=DATA, classes=MOTION_CLASSES
    )
    return save_checkpoint(checkpoint, tmp_path / "mdp" / "model.pt"), model


def test_cli_ava_aap_eval_on_a_pruned_checkpoint(tmp_path, pruned_checkpoint, capsys):
    path, pruned = pruned_checkpoint
    ava_out, aap_out = tmp_path / "ava", tmp_path / "aap"
    common = ["--epochs", "1", *SHRINK]
    assert main(["ava", "--checkpoint", str(path), "--out", str(ava_out), *common, "--set", "ava.batch_size=8",
                 "--set", "ava.progress=false"]) == 0  # fmt: skip
    ava = load_model(ava_out / "model.pt")
    assert ava.kind == "pruned" and ava.checkpoint.model == load_checkpoint(path).model  # the pruned spec travels on
    assert {k: v.shape for k, v in ava.model.state_dict().items()} == {
        k: v.shape for k, v in pruned.state_dict().items()
    }
    assert main(["aap", "--checkpoint", str(ava_out / "model.pt"), "--out", str(aap_out), *common,
                 "--set", "aap.batch_size=8", "--set", "aap.progress=false",
                 "--set", "aap.joint_epochs=0", "--set", "dynamic.channel_multiple=2"]) == 0  # fmt: skip
    loaded = load_model(aap_out / "model.pt")
    assert loaded.kind == "dynamic" and isinstance(loaded.model, DynamicModel)
    assert loaded.model.block_names == ["blocks.0", "blocks.3"]
    assert loaded.checkpoint.model["backbone"]["removed_blocks"] == ["blocks.1", "blocks.2"]
    assert loaded.checkpoint.model["backbone_kind"] == "pruned"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(aap_out / "model.pt"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_clips"] == DATA.num_test and 0 < report["clip_stat_summary"]["mac_fraction"]["mean"] <= 1.05
    # MDP and its latency table start from dense models only: clear errors, not a KeyError
    for args in (["latency-table", "--checkpoint", str(ava_out / "model.pt"), "--out", str(tmp_path / "t.json")],
                 ["mdp", "--checkpoint", str(path), "--latency-table", "x.json", "--target-latency", "0.5",
                  "--out", str(tmp_path / "x")],
                 ["mdp", "--checkpoint", str(ava_out / "model.pt"), "--latency-table", "x.json",
                  "--target-latency", "0.5", "--out", str(tmp_path / "x")]):  # fmt: skip
        assert main(args) == 2
        assert "dense" in capsys.readouterr().err
    # AAP straight from the pruned checkpoint too
    assert main(["aap", "--checkpoint", str(path), "--out", str(tmp_path / "aap2"), *common,
                 "--set", "aap.batch_size=8", "--set", "aap.progress=false",
                 "--set", "aap.joint_epochs=0"]) == 0  # fmt: skip
    assert load_model(tmp_path / "aap2" / "model.pt").model.block_names == ["blocks.0", "blocks.3"]
