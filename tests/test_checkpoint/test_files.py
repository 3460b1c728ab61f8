"""Checkpoint files: writes that leave nothing behind, permissions, and read errors that say what is wrong."""

import os

import pytest
import torch
from model_helpers import make_dense

import dance3d.loading  # noqa: F401 - registers the shipped kinds
from dance3d.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.errors import CheckpointError
from dance3d.models import create_model

DATA = DataConfig(num_frames=8, height=32, width=32)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}


@pytest.fixture
def dense_checkpoint(tmp_path):
    record = Checkpoint.create("dense", SPEC, make_dense().state_dict(), data=DATA, classes=MOTION_CLASSES)
    return save_checkpoint(record, tmp_path / "run" / "model.pt")


def test_the_next_write_removes_the_temp_file_of_a_killed_write(dense_checkpoint):
    orphan = dense_checkpoint.with_name("model.pt.k1ll3d.tmp")  # what a write killed before its rename leaves
    orphan.write_bytes(b"partial")
    other = dense_checkpoint.with_name("other.pt.k1ll3d.tmp")  # another checkpoint's: not ours to remove
    other.write_bytes(b"partial")
    save_checkpoint(load_checkpoint(dense_checkpoint), dense_checkpoint)
    assert sorted(p.name for p in dense_checkpoint.parent.iterdir()) == ["model.pt", "other.pt.k1ll3d.tmp"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoints_get_the_permissions_the_umask_gives(dense_checkpoint, umask):
    old = os.umask(umask)
    try:
        path = save_checkpoint(load_checkpoint(dense_checkpoint), dense_checkpoint.with_name("again.pt"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_directory_is_named_as_one_and_its_model_pt_suggested(dense_checkpoint, tmp_path, run_cli):
    with pytest.raises(CheckpointError, match=f"{dense_checkpoint.parent} is a directory.*did you mean .*model.pt"):
        load_checkpoint(dense_checkpoint.parent)
    code, _, err = run_cli("eval", "--checkpoint", str(tmp_path))
    assert code == 2 and f"checkpoint {tmp_path} is a directory, not a file\n" in err and "Traceback" not in err


def test_unreadable_files_say_why_and_never_suggest_unsafe_loading(dense_checkpoint, tmp_path, run_cli):
    good = dense_checkpoint.read_bytes()
    cases = {
        "empty.pt": (b"", "the file is empty"),
        "truncated.pt": (good[: len(good) // 2], "truncated or corrupt"),
        "random.pt": (bytes(range(7, 250)), "not a torch checkpoint"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=f"cannot read checkpoint .*{name}: .*{reason}"):
            load_checkpoint(tmp_path / name)
        code, _, err = run_cli("eval", "--checkpoint", str(tmp_path / name))
        assert code == 2 and reason in err and "weights_only" not in err and "Traceback" not in err
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module, not tensors and data
    with pytest.raises(CheckpointError, match="pickled Python objects") as error:
        load_checkpoint(tmp_path / "module.pt")
    assert "weights_only" not in str(error.value)


def test_a_missing_entry_names_the_file_and_the_entry(dense_checkpoint, run_cli):
    payload = load_checkpoint(dense_checkpoint).to_payload()
    del payload["data"]
    torch.save(payload, dense_checkpoint)
    with pytest.raises(CheckpointError, match=f"{dense_checkpoint}: checkpoint has no 'data' entry"):
        load_model(dense_checkpoint)
    code, _, err = run_cli("eval", "--checkpoint", str(dense_checkpoint))
    assert code == 2 and "checkpoint has no 'data' entry" in err and "KeyError" not in err


def test_pretrained_weights_can_come_from_a_dance3d_checkpoint(dense_checkpoint):
    model = create_model("tiny-test", num_classes=8, pretrained=str(dense_checkpoint))
    for key, value in load_checkpoint(dense_checkpoint).state_dict.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_one_checkpoint_has_one_path_whatever_the_spelling(dense_checkpoint, monkeypatch):
    monkeypatch.chdir(dense_checkpoint.parent)
    spellings = ["model.pt", "./model.pt", f"../{dense_checkpoint.parent.name}/model.pt", str(dense_checkpoint)]
    assert {load_model(s).path for s in spellings} == {dense_checkpoint.resolve()}
