"""The checkpoint record and the kind registry: build, save, load and dispatch; files of format 1 still load."""

import pytest
import torch
from model_helpers import make_dense

import dance3d.loading  # noqa: F401 - registers the shipped kinds
from dance3d.checkpoint import (
    FORMAT,
    Checkpoint,
    kinds,
    load_checkpoint,
    load_model,
    register_checkpoint_kind,
    save_checkpoint,
)
from dance3d.config import to_dict
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model
from dance3d.dynamic.checkpoint import dynamic_spec
from dance3d.errors import CheckpointError
from dance3d.mdp.checkpoint import pruned_spec
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan

CLIP = (8, 32, 32)
DATA = DataConfig(num_frames=8, height=32, width=32)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}


def _pruned():
    dense = make_dense()
    structure = extract_structure(dense, (3, *CLIP))
    plan = PrunePlan({g: max(1, info.width // 2) for g, info in structure.groups.items()}, ())
    return materialize(structure, plan).eval(), pruned_spec(SPEC, (3, *CLIP), plan)


def _format_1(path, **payload):
    """A payload as dance3d wrote it before kinds were recorded for every network (format 1)."""
    torch.save({"format": FORMAT, "format_version": 1, "data": to_dict(DATA), "classes": list(MOTION_CLASSES),
                **payload}, path)  # fmt: skip
    return path


def test_create_save_load_round_trip_keeps_extras_and_reads_as_the_stored_payload(tmp_path):
    model = make_dense()
    record = Checkpoint.create("dense", SPEC, model.state_dict(), data=DATA, classes=MOTION_CLASSES, aap={"x": 1})
    loaded = load_checkpoint(save_checkpoint(record, tmp_path / "model.pt"))
    assert loaded.kind == "dense" and loaded.classes == tuple(MOTION_CLASSES) and loaded.extras == {"aap": {"x": 1}}
    assert loaded["aap"] == {"x": 1} and loaded.get("config") is None and loaded["data"]["height"] == 32
    with pytest.raises(ValueError, match="core entry names.*'format_version'"):
        Checkpoint.create("dense", SPEC, {}, data=DATA, classes=["a"], format_version=9)


def test_a_new_kind_registers_in_a_few_lines_and_loading_dispatches_on_it(tmp_path, monkeypatch):
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))  # the registration ends with the test

    def build_scaled(checkpoint):
        model = torch.nn.Linear(1, 1, bias=False)
        model.load_state_dict(checkpoint.state_dict)
        return model

    register_checkpoint_kind("test-scaled", build_model=build_scaled)
    weight = {"weight": torch.full((1, 1), 3.0)}
    path = save_checkpoint(Checkpoint.create("test-scaled", {}, weight, data=DATA, classes=["a"]), tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.kind == "test-scaled" and loaded.model(torch.ones(1, 1)).item() == 3.0
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="unknown checkpoint kind 'test-scaled'.*registered: .*dense, dynamic"):
        load_model(path)


def test_format_1_files_load_with_their_kind_inferred(tmp_path):
    dense = make_dense()
    no_kind = _format_1(tmp_path / "no_kind.pt", model=SPEC, state_dict=dense.state_dict())
    assert load_model(no_kind).kind == "dense"

    pruned, spec = _pruned()  # 'dance3d ava' on a pruned model recorded "dense"
    ava_of_pruned = _format_1(tmp_path / "ava.pt", kind="dense", model=spec, state_dict=pruned.state_dict())
    loaded = load_model(ava_of_pruned)
    clip = torch.randn(2, 3, *CLIP)
    assert loaded.kind == "pruned" and torch.equal(loaded.model(clip), pruned(clip))

    dynamic = convert_model(dense, clip_shape=CLIP, config=DynamicConfig(channel_multiple=4)).eval()
    spec = {k: v for k, v in dynamic_spec(dynamic, SPEC, backbone_kind="dense").items() if k != "backbone_kind"}
    old_dynamic = _format_1(tmp_path / "dyn.pt", kind="dynamic", model=spec, state_dict=dynamic.state_dict())
    loaded = load_model(old_dynamic)
    assert isinstance(loaded.model, DynamicModel) and torch.equal(loaded.model(clip), dynamic(clip))


def test_a_dynamic_model_over_a_pruned_backbone_records_and_rebuilds_it(tmp_path):
    pruned_graph, spec = _pruned()
    network = kinds.build_network(spec, "pruned")
    network.load_state_dict(pruned_graph.state_dict())
    dynamic = convert_model(network.eval(), clip_shape=CLIP, config=DynamicConfig(channel_multiple=1)).eval()
    dyn_spec = dynamic_spec(dynamic, spec, backbone_kind="pruned")
    record = Checkpoint.create("dynamic", dyn_spec, dynamic.state_dict(), data=DATA, classes=MOTION_CLASSES)
    loaded = load_model(save_checkpoint(record, tmp_path / "model.pt"))
    clip = torch.randn(2, 3, *CLIP)
    assert loaded.checkpoint.model["backbone_kind"] == "pruned"
    assert torch.equal(loaded.model(clip), dynamic(clip))
