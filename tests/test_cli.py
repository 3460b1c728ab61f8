"""The command line end to end: train → eval (moving-digits and real video folders), errors."""

import json
import subprocess
import sys

import pytest
from video_fixtures import make_bad_file

from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.video_io import export_moving_digits
from dance3d.loading import load_model


def test_help_lists_commands(run_cli):
    code, out, _ = run_cli()
    assert code == 0
    for command in ("quickstart", "train", "eval", "models"):
        assert command in out


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "dance3d", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("dance3d ")


def test_eval_json_on_moving_digits(run_cli, trained_tiny):
    code, out, _ = run_cli("eval", "--checkpoint", trained_tiny, "--data", "moving-digits", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["num_clips"] == 24 and 0.0 <= report["top1"] <= report["top5"] <= 1.0
    assert set(report["per_class_accuracy"]) == set(MOTION_CLASSES)
    record = report["records"][0]
    assert {"label", "prediction", "correct", "redundancy", "static_frame_fraction"} <= set(record)
    assert sum(r["correct"] for r in report["records"]) / 24 == pytest.approx(report["top1"])


def test_eval_on_real_video_folder_matches_tensor_eval(run_cli, tmp_path, trained_tiny):
    data = load_model(trained_tiny).data
    export_moving_digits(tmp_path / "videos", "test", 12, data.moving_digits())
    code, out, _ = run_cli("eval", "--checkpoint", trained_tiny, "--data", str(tmp_path / "videos"),
                           "--format", "json")  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert report["num_clips"] == 12
    assert all(r["path"].endswith(".mp4") for r in report["records"])
    for record in report["records"]:  # labels come from folder names in moving-digits class order
        assert MOTION_CLASSES[record["label"]] in record["path"]


def test_eval_names_a_broken_video(run_cli, tmp_path, trained_tiny):
    data = load_model(trained_tiny).data
    export_moving_digits(tmp_path / "videos", "test", 4, data.moving_digits())
    bad = make_bad_file(tmp_path / "videos" / "left" / "broken.mp4", "truncated")
    code, _, err = run_cli("eval", "--checkpoint", trained_tiny, "--data", str(tmp_path / "videos"))
    assert code == 2
    assert str(bad) in err and "Traceback" not in err

    code, out, err = run_cli("eval", "--checkpoint", trained_tiny, "--data", str(tmp_path / "videos"),
                             "--skip-bad", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["skipped"]["count"] == 1 and report["skipped"]["videos"][0]["path"] == str(bad)
    assert report["num_clips"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--checkpoint", "missing.pt"], "checkpoint not found: missing.pt"),
        (["train", "--out", "x", "--set", "train.lr=-1"], "lr must be > 0"),
        (["train", "--out", "x", "--model", "r4d", "--set", "data.num_train=8"], "unknown model 'r4d'"),
        (["train", "--out", "x", "--data", "/no/such/videos"], "data path not found: /no/such/videos"),
    ],
)
def test_user_errors_are_one_clear_line(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_import_is_light():
    code = (
        "import sys, dance3d, dance3d.models, dance3d.data, dance3d.loading;"
        "import torch; bad = [m for m in ('optuna', 'matplotlib') if m in sys.modules];"
        "assert not bad, bad; assert not torch.cuda.is_initialized()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
