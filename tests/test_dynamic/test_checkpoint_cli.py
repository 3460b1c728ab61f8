import json

import pytest
import torch
from dynamic_helpers import CLIP, frame_sensitive, make_dense, partly_static_clip

from dance3d.checkpoint import Checkpoint, save_checkpoint
from dance3d.cli.main import main
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, DynamicModel, convert_model
from dance3d.dynamic.checkpoint import KIND, dynamic_spec
from dance3d.loading import load_model

DATA = DataConfig(num_frames=8, height=32, width=32, num_train=32, num_val=16, num_test=16)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}
SHRINK = ["--set", "data.num_train=32", "--set", "data.num_val=16", "--set", "data.num_test=16"]


def test_dynamic_checkpoint_round_trip(tmp_path):
    model = frame_sensitive(convert_model(make_dense(), clip_shape=CLIP, config=DynamicConfig(channel_multiple=4)))
    spec = dynamic_spec(model, SPEC, backbone_kind="dense")
    checkpoint = Checkpoint.create(KIND, spec, model.state_dict(), data=DATA, classes=MOTION_CLASSES)
    path = save_checkpoint(checkpoint, tmp_path / "model.pt")
    loaded = load_model(path)
    assert loaded.kind == "dynamic" and isinstance(loaded.model, DynamicModel)
    assert loaded.model.config == model.config and loaded.model.mode == "simulate"
    clips = torch.stack([partly_static_clip(0, 2), partly_static_clip(1, 8)])
    with torch.no_grad():
        expected = model.eval()(clips)
        got = loaded.model(clips)
    assert torch.equal(got, expected)
    assert [d.frames.tolist() for d in loaded.model.last_decisions] == [d.frames.tolist() for d in model.last_decisions]


@pytest.fixture
def dense_checkpoint(tmp_path):
    checkpoint = Checkpoint.create("dense", SPEC, make_dense().state_dict(), data=DATA, classes=MOTION_CLASSES)
    return save_checkpoint(checkpoint, tmp_path / "dense" / "model.pt")


def test_cli_ava_aap_eval_end_to_end(tmp_path, dense_checkpoint, capsys):
    ava_out, aap_out = tmp_path / "ava", tmp_path / "aap"
    assert (
        main(
            [
                "ava",
                "--checkpoint",
                str(dense_checkpoint),
                "--out",
                str(ava_out),
                "--epochs",
                "1",
                "--set",
                "ava.batch_size=8",
                "--set",
                "ava.progress=false",
                *SHRINK,
            ]
        )
        == 0
    )
    assert {"model.pt", "config.yaml", "metrics.jsonl", "ava_variability.png"} <= {p.name for p in ava_out.iterdir()}
    assert load_model(ava_out / "model.pt").kind == "dense"
    assert (
        main(
            [
                "aap",
                "--checkpoint",
                str(ava_out / "model.pt"),
                "--out",
                str(aap_out),
                "--epochs",
                "1",
                "--target-mac-fraction",
                "0.4",
                "--set",
                "aap.batch_size=8",
                "--set",
                "aap.progress=false",
                "--set",
                "aap.joint_epochs=0",
                "--set",
                "dynamic.channel_multiple=4",
                *SHRINK,
            ]
        )
        == 0
    )
    assert "target_mac_fraction: 0.4" in (aap_out / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(aap_out / "model.pt"), "--format", "json", *[]]) == 0
    report = json.loads(capsys.readouterr().out)
    summary = report["clip_stat_summary"]
    assert 0 <= report["top1"] <= 1 and report["num_clips"] == 16
    assert set(summary["mac_fraction"]) == {"mean", "p10", "p50", "p90"}
    assert 0 < summary["mac_fraction"]["mean"] < 1.05
    assert "g0.frame_keep" in summary and "g3.channel_keep" in summary
    distinct = report["distinct_keep_rates_per_gate"]
    assert set(distinct) == {"frame_keep", "channel_keep", "tile_keep"} and all(len(v) == 4 for v in distinct.values())
    assert all(1 <= n <= 16 for v in distinct.values() for n in v)
    assert main(["eval", "--checkpoint", str(aap_out / "model.pt"), "--limit", "8"]) == 0
    assert "distinct channel_keep per gate" in capsys.readouterr().out


def test_cli_aap_rejects_a_dynamic_checkpoint_as_input(tmp_path, dense_checkpoint, capsys):
    out = tmp_path / "aap"
    args = ["--set", "aap.progress=false", "--set", "aap.joint_epochs=0", "--set", "dynamic.channel_multiple=4"]
    args += SHRINK
    assert main(["aap", "--checkpoint", str(dense_checkpoint), "--out", str(out), "--epochs", "1", *args]) == 0
    assert main(["aap", "--checkpoint", str(out / "model.pt"), "--out", str(tmp_path / "x"), *args]) == 2
    assert "expected a dense one" in capsys.readouterr().err
