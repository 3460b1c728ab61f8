"""``--execution compact`` in ``dance3d eval`` and ``dance3d profile``."""

import json

import pytest
import torch
from dynamic_helpers import CLIP, make_dense

from dance3d.checkpoint import Checkpoint, save_checkpoint
from dance3d.cli.main import main
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.dynamic.checkpoint import KIND, dynamic_spec

DATA = DataConfig(num_frames=8, height=32, width=32, num_train=8, num_val=8, num_test=8)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}


def _checkpoint(kind, model, state):
    return Checkpoint.create(kind, model, state, data=DATA, classes=MOTION_CLASSES)


@pytest.fixture
def dynamic_checkpoint(tmp_path):
    model = convert_model(make_dense(), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4, tile_size=4))
    with torch.no_grad():  # a controller that keeps some channels only
        for head in model.controller.channel_heads:
            head.bias.copy_(torch.linspace(-1, 1, head.bias.numel()))
    spec = dynamic_spec(model, SPEC, backbone_kind="dense")
    return save_checkpoint(_checkpoint(KIND, spec, model.state_dict()), tmp_path / "dyn" / "model.pt")


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_compact_matches_simulate(dynamic_checkpoint, capsys):
    base = ["eval", "--checkpoint", str(dynamic_checkpoint), "--format", "json", "--batch-size", "3"]
    simulate = _json(capsys, base)
    compact = _json(capsys, [*base, "--execution", "compact"])
    assert simulate["execution"] == "simulate" and compact["execution"] == "compact"
    assert compact["top1"] == simulate["top1"]
    assert compact["clip_stat_summary"]["mac_fraction"] == pytest.approx(simulate["clip_stat_summary"]["mac_fraction"])
    assert compact["clip_stat_summary"]["mac_fraction"]["mean"] < 0.95


def test_execution_flag_is_rejected_for_dense_checkpoints(tmp_path, capsys):
    path = save_checkpoint(_checkpoint("dense", SPEC, make_dense().state_dict()), tmp_path / "dense" / "model.pt")
    assert main(["eval", "--checkpoint", str(path), "--execution", "compact"]) == 2
    assert "dynamic checkpoints" in capsys.readouterr().err
    assert main(["profile", "--model", "tiny-test", "--execution", "compact", "--no-energy"]) == 2


def test_profile_compact_counts_the_smaller_convolutions(dynamic_checkpoint, capsys):
    base = ["profile", "--checkpoint", str(dynamic_checkpoint), "--no-energy", "--repeats", "2", "--limit", "2"]
    simulate = _json(capsys, [*base, "--format", "json"])
    compact = _json(capsys, [*base, "--format", "json", "--execution", "compact"])
    assert compact["execution"] == "compact" and simulate["execution"] == "simulate"
    assert compact["macs"] < 0.95 * simulate["macs"]
    assert compact["latency_ms"] > 0


def test_compile_controller_needs_compact_execution_and_stays_out_of_the_state_dict(dynamic_checkpoint, capsys):
    assert main(["eval", "--checkpoint", str(dynamic_checkpoint), "--compile-controller"]) == 2
    assert "--compile-controller needs --execution compact" in capsys.readouterr().err
    model = convert_model(make_dense(), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4))
    keys = set(model.state_dict())
    model.compile_controller()  # lazy: nothing compiles before a forward
    assert set(model.state_dict()) == keys
