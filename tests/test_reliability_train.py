"""Training runs: resume with the run's own settings, one writer per run directory, bad videos found up front."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
from video_fixtures import make_bad_file

from dance3d import run_lock
from dance3d.checkpoint import load_checkpoint
from dance3d.cli.main import main
from dance3d.data.video_folder import VideoFolderDataset
from dance3d.data.video_io import export_moving_digits
from dance3d.training import trainer

TINY = ["--model", "tiny-test", "--batch-size", "8", "--set", "data.num_frames=8", "--set", "data.height=32",
        "--set", "data.width=32", "--set", "data.num_train=16", "--set", "data.num_val=8", "--set",
        "train.num_workers=0", "--set", "train.progress=false", "--set", "train.checkpoint_every_steps=1"]  # fmt: skip


def test_resume_uses_the_runs_settings_and_refuses_contradictions(tmp_path, capsys, monkeypatch):
    out = tmp_path / "dense"
    log = trainer._log

    def killed_after_first_epoch(ctx, message):  # the process dies at the end of epoch 1, before its checkpoint
        if message.startswith("epoch=1"):
            raise KeyboardInterrupt
        log(ctx, message)

    monkeypatch.setattr(trainer, "_log", killed_after_first_epoch)
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 130
    monkeypatch.setattr(trainer, "_log", log)
    config_text = (out / "config.yaml").read_text()
    assert load_checkpoint(out / "model.pt")["global_step"] == 1  # the mid-epoch checkpoint

    assert main(["train", "--out", str(out), "--resume", "--epochs", "3"]) == 2
    assert "train.epochs: 2 -> 3" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--set", "data.num_train=32"]) == 2
    assert "data.num_train: 16 -> 32" in capsys.readouterr().err

    assert main(["train", "--out", str(out), "--resume", "--format", "json"]) == 0  # no flags: the run's own
    history = json.loads(capsys.readouterr().out)["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert (out / "config.yaml").read_text() == config_text

    before = (out / "model.pt").stat().st_mtime_ns
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert "already finished its 2 epochs; nothing to do" in capsys.readouterr().out
    assert (out / "model.pt").stat().st_mtime_ns == before


def test_a_run_directory_held_by_a_live_process_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "dense"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        out.mkdir()
        (out / run_lock.LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 2
        assert f"in use by pid {holder.pid}" in capsys.readouterr().err
        assert not (out / "model.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock.run_lock(out) as path:  # the holder died: its lock is stale and taken over
        assert run_lock.read_lock(path) == {"pid": os.getpid(), "host": socket.gethostname()}
    assert not path.exists()


def test_budget_and_deploy_do_not_overwrite_without_force(tmp_path, capsys):
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"finished work")
    budget = ["budget", "--checkpoint", str(tmp_path / "aap.pt"), "--target-mac-fraction", "0.3"]
    assert main([*budget, "--out", str(existing)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["study", "deploy", "--storage", str(tmp_path / "s.db"), "--trial", "0", "--out", str(existing)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main([*budget, "--out", str(existing), "--force"]) == 2  # gets past the check, to the missing checkpoint
    assert "aap.pt" in capsys.readouterr().err
    assert existing.read_bytes() == b"finished work"


@pytest.fixture
def folder_with_a_bad_video(tmp_path):
    from dance3d.data.registry import DataConfig

    root = tmp_path / "videos"
    export_moving_digits(root, "train", 16, DataConfig(num_frames=8, height=32, width=32).moving_digits())
    bad = make_bad_file(root / "left" / "zz_broken.mp4", "truncated")
    return root, bad


def test_bad_videos_are_found_before_the_first_step(folder_with_a_bad_video, tmp_path, capsys, monkeypatch):
    root, bad = folder_with_a_bad_video
    steps = []
    monkeypatch.setattr(trainer, "create_model", lambda *a, **k: steps.append("model"))
    args = ["train", *TINY, "--epochs", "1", "--data", str(root)]
    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert str(bad.relative_to(root)) in err and "1 of 17 videos" in err
    assert steps == [] and not (tmp_path / "strict" / "config.yaml").exists()  # before any model was built


def test_training_with_skip_bad_leaves_bad_videos_out_and_varies_windows(
    folder_with_a_bad_video, tmp_path, capsys, monkeypatch
):
    root, bad = folder_with_a_bad_video
    epochs_set = []
    set_epoch = VideoFolderDataset.set_epoch
    monkeypatch.setattr(VideoFolderDataset, "set_epoch", lambda self, e: epochs_set.append(e) or set_epoch(self, e))
    args = ["train", *TINY, "--epochs", "2", "--data", str(root), "--skip-bad"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert f"left 1 bad videos out of training: {bad}" in captured.err + captured.out
    assert f"no val split in {root}" in captured.out and "nan" not in captured.out
    assert epochs_set == [0, 1]


def test_training_on_videos_decodes_in_spawned_workers(folder_with_a_bad_video, tmp_path, capsys, monkeypatch):
    """The trainer decodes every video's first frame itself before the first step; its loader workers are then
    spawned, not forked (a worker forked after decoding can hang), and the run completes."""
    from dance3d.data.workers import worker_context

    contexts = []
    monkeypatch.setattr(trainer, "worker_context", lambda *a: contexts.append(worker_context(*a)) or contexts[-1])
    root, _ = folder_with_a_bad_video
    args = ["train", *TINY, "--epochs", "1", "--data", str(root), "--skip-bad", "--set", "train.num_workers=1"]
    assert main([*args, "--out", str(tmp_path / "run"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["history"][0]["epoch"] == 1
    assert contexts == ["spawn"]  # the training loader's, one epoch
