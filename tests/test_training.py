import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from dance3d.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dance3d.checkpoint import files as checkpoint_files
from dance3d.data.registry import DataConfig
from dance3d.errors import CheckpointError, ConfigError
from dance3d.loading import load_model
from dance3d.training import trainer as trainer_module
from dance3d.training.trainer import train


def test_train_writes_checkpoint_config_and_metrics(tmp_path, tiny_run_config):
    result = train(tiny_run_config, tmp_path)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
    loaded = load_model(result.checkpoint_path)
    assert loaded.kind == "dense" and loaded.data == tiny_run_config.data and len(loaded.classes) == 8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_model_options_shape_the_model_and_travel_in_the_checkpoint(tmp_path, tiny_run_config):
    options = {"inner_multiplier": 0.5, "stage_channels": [8, 24]}
    narrow = dataclasses.replace(tiny_run_config.train, epochs=1, model_options=options)
    result = train(dataclasses.replace(tiny_run_config, train=narrow), tmp_path)
    assert load_checkpoint(result.checkpoint_path)["model"]["options"] == options
    blocks = load_model(result.checkpoint_path).model.blocks
    assert [block.conv_a.out_channels for block in blocks] == [4, 4, 12, 12]
    assert blocks[-1].conv_b.out_channels == 24
    with pytest.raises(ConfigError, match="was started with other settings .*train.model_options"):
        train(tiny_run_config, tmp_path, resume=True)  # the options left out: a clear error, not a shape mismatch


def test_refuses_to_overwrite_without_resume(tmp_path, tiny_run_config):
    train(dataclasses.replace(tiny_run_config, train=dataclasses.replace(tiny_run_config.train, epochs=1)), tmp_path)
    with pytest.raises(ConfigError, match="exists; pass --resume"):
        train(tiny_run_config, tmp_path)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny_run_config, monkeypatch):
    reference = load_checkpoint(train(tiny_run_config, tmp_path / "ref").checkpoint_path)

    saves = {"count": 0}
    real_save = trainer_module.save_checkpoint

    def save_then_die(payload, path):
        real_save(payload, path)
        saves["count"] += 1
        if saves["count"] == 2:  # killed right after a mid-epoch checkpoint (step 4 of 6 in epoch 1)
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_run_config, tmp_path / "killed")
    assert load_checkpoint(tmp_path / "killed" / "model.pt")["global_step"] == 4
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    resumed = load_checkpoint(train(tiny_run_config, tmp_path / "killed", resume=True).checkpoint_path)

    assert resumed["global_step"] == reference["global_step"] == 12
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    assert [r["train_loss"] for r in resumed["history"]] == pytest.approx(
        [r["train_loss"] for r in reference["history"]], abs=1e-6
    )


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    checkpoint = Checkpoint.create("dense", {"name": "tiny-test"}, {}, data=DataConfig(), classes=["a"], value=1)
    path = save_checkpoint(checkpoint, tmp_path / "model.pt")

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_files.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(checkpoint.replace(extras={"value": 2}), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_bad_checkpoints_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "trunc.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weight": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a dance3d checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
        "-m", "dance3d", "train", "--model", "tiny-test", "--data", "moving-digits", "--epochs", "1",
        "--batch-size", "4", "--device", "cpu", "--out", str(out),
        "--set", "data.num_frames=8", "--set", "data.height=32", "--set", "data.width=32",
        "--set", "data.num_train=32", "--set", "data.num_val=8", "--set", "train.num_workers=0",
        "--set", "train.threads=1", "--set", "train.progress=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = load_checkpoint(out / "model.pt")
    # 32 clips over 2 ranks x batch 4 = 4 steps; the epoch metrics count clips from both ranks.
    assert checkpoint["global_step"] == 4
    assert checkpoint["history"][0]["epoch"] == 1
    assert not any(k.startswith("module.") for k in checkpoint["state_dict"])


def test_a_logged_progress_bar_shows_the_loss_with_the_batch_count_not_once_per_batch(
    tmp_path, tiny_run_config, capsys
):
    """In a log (stderr not a terminal) the training bar refreshes every 15 s, not at every batch, and a line that
    shows the loss shows how many batches ran (tqdm shows a stale count when the postfix forces a refresh)."""
    config = dataclasses.replace(tiny_run_config, train=dataclasses.replace(tiny_run_config.train, progress=True))
    train(config, tmp_path)
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "epoch 1/" in line]
    with_loss = [line for line in lines if "loss=" in line]
    assert with_loss and len(lines) <= 3, lines
    for line in with_loss:
        done, total = line.split("|")[2].split()[0].split("/")
        assert done == total, line
