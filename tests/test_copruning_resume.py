"""A killed ``dance3d copruning`` run resumes from its last finished epoch and ends as the uninterrupted run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dance3d.checkpoint import load_checkpoint
from dance3d.cli.main import main
from dance3d.copruning import training
from dance3d.copruning.fallback import FallbackCalibration
from dance3d.copruning.quickstart_stage import CopruningStageSettings, run_copruning_stage

DATA = ["--set", "data.forecast.num_train=16", "--set", "data.forecast.num_val=8", "--set", "data.forecast.num_test=8",
        "--set", "data.forecast.height=16", "--set", "data.forecast.width=16"]  # fmt: skip
RUN = ["--tile-size", "4", "--target-mac-fraction", "0.5", "--distill-weight", "0.5", "--epochs", "2",
       "--batch-size", "8", "--threads", "1", "--set", "train.progress=false"]  # fmt: skip
FILES = ["config.yaml", "metrics.jsonl", "model.pt", "steps.jsonl"]


class Killed(Exception):
    """Stands for the process dying mid-run."""


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fc") / "run"
    settings = ["--set", "train.num_workers=0", "--set", "train.progress=false", *DATA]
    args = ["train", "--task", "forecast", "--model", "simvp-test", "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--threads", "1", "--out", str(out), *settings]) == 0
    return out / "model.pt"


def _copruning(dense: Path, out: Path, *extra: str) -> int:
    return main(["copruning", "--checkpoint", str(dense), "--out", str(out), *RUN, *extra])


@pytest.fixture(scope="module")
def uninterrupted(dense_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    assert _copruning(dense_checkpoint, out) == 0
    return out


def _dies_at_second_epochs_second_step(monkeypatch: pytest.MonkeyPatch, error: type[BaseException]) -> None:
    """Make the run die during epoch 2 (after epoch 1 saved its state and one step of epoch 2 was logged)."""
    step_row = training._step_row

    def dying(model, *, epoch: int, step: int, **kwargs):  # noqa: ANN001, ANN202
        if epoch == 1 and step == 1:
            raise error
        return step_row(model, epoch=epoch, step=step, **kwargs)

    monkeypatch.setattr(training, "_step_row", dying)


@pytest.fixture(scope="module")
def killed(dense_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killed") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _dies_at_second_epochs_second_step(monkeypatch, KeyboardInterrupt)
        assert _copruning(dense_checkpoint, out) == 130  # the CLI's answer to an interrupted run
    return out


@pytest.fixture
def killed_copy(killed, tmp_path) -> Path:
    return Path(shutil.copytree(killed, tmp_path / "run"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _contents(run: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(run.iterdir())}


def test_a_killed_run_keeps_its_last_finished_epoch(killed):
    assert not (killed / "model.pt").exists()
    state = load_checkpoint(killed / training.RESUME_STATE)
    assert state.kind == "copruned" and state["epochs_done"] == 1 and len(state.history) == 1
    assert set(state["optimizer"]["state"]) and set(state["rng_state"]) == {"cpu"}
    assert [row["epoch"] for row in _rows(killed / "metrics.jsonl")] == [1]
    steps = _rows(killed / "steps.jsonl")  # the killed epoch's first step was logged too
    assert [(row["epoch"], row["step"]) for row in steps] == [(1, 0), (1, 1), (2, 0)]
    assert state["steps_bytes"] < (killed / "steps.jsonl").stat().st_size


def test_a_resumed_run_ends_with_the_files_of_the_uninterrupted_run(killed_copy, uninterrupted):
    # the run's own settings and checkpoint; the thread count is not a setting, but it changes float rounding
    assert main(["copruning", "--out", str(killed_copy), "--resume", "--threads", "1"]) == 0
    assert sorted(path.name for path in killed_copy.iterdir()) == FILES  # resume.pt is gone once model.pt is written
    resumed, full = _contents(killed_copy), _contents(uninterrupted)
    for name in ("config.yaml", "metrics.jsonl", "steps.jsonl"):
        assert resumed[name] == full[name], name  # bitwise: same rows, none duplicated or lost
    steps = [(row["epoch"], row["step"]) for row in _rows(killed_copy / "steps.jsonl")]
    assert steps == [(1, 0), (1, 1), (2, 0), (2, 1)]
    resumed_ckpt, full_ckpt = load_checkpoint(killed_copy / "model.pt"), load_checkpoint(uninterrupted / "model.pt")
    assert resumed_ckpt.history == full_ckpt.history and len(full_ckpt.history) == 2
    assert resumed_ckpt["copruning"] == full_ckpt["copruning"]
    assert resumed_ckpt.state_dict.keys() == full_ckpt.state_dict.keys()
    for key, value in full_ckpt.state_dict.items():
        assert torch.equal(resumed_ckpt.state_dict[key], value), key  # bitwise equal weights


@pytest.mark.parametrize(
    ("flags", "conflict"),
    [
        (["--target-mac-fraction", "0.3"], "copruning.target_mac_fraction: 0.5 -> 0.3"),
        (["--epochs", "3"], "train.epochs: 2 -> 3"),
        (["--masks", "data"], "copruning.model_mask: True -> False"),
        (["--set", "train.seed=1"], "train.seed: 0 -> 1"),
    ],
)
def test_resume_refuses_flags_that_contradict_the_run(run_cli, killed_copy, flags, conflict):
    before = _contents(killed_copy)
    code, _, err = run_cli("copruning", "--out", str(killed_copy), "--resume", *flags)
    assert code == 2 and conflict in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _contents(killed_copy) == before


def test_resume_refuses_another_start_checkpoint(run_cli, killed_copy, dense_checkpoint, tmp_path):
    other = Path(shutil.copy(dense_checkpoint, tmp_path / "other.pt"))
    code, _, err = run_cli("copruning", "--checkpoint", str(other), "--out", str(killed_copy), "--resume")
    assert code == 2 and str(dense_checkpoint.resolve()) in err and str(other.resolve()) in err
    code, _, err = run_cli("copruning", "--checkpoint", str(dense_checkpoint), "--out", str(killed_copy), "--resume",
                           "--set", "train.progress=true")  # fmt: skip
    assert code == 0, err  # the same checkpoint named explicitly, and a display-only change, are accepted


def test_an_out_holding_a_killed_run_is_refused_without_resume(run_cli, killed_copy, dense_checkpoint):
    before = _contents(killed_copy)
    code, _, err = run_cli("copruning", "--checkpoint", str(dense_checkpoint), "--out", str(killed_copy), *RUN)
    assert code == 2 and "resume.pt exists; pass --resume" in err and "Traceback" not in err
    assert _contents(killed_copy) == before


def test_resuming_a_finished_run_is_a_no_op(run_cli, uninterrupted):
    before = {path.name: path.stat().st_mtime_ns for path in uninterrupted.iterdir()}
    code, out, _ = run_cli("copruning", "--out", str(uninterrupted), "--resume")
    assert code == 0 and "already finished its 2 epochs; nothing to do" in out
    code, out, _ = run_cli("copruning", "--out", str(uninterrupted), "--resume", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["already_finished"] and len(report["history"]) == 2
    assert report["val_mse"] == load_checkpoint(uninterrupted / "model.pt")["copruning"]["val_mse"]
    assert {path.name: path.stat().st_mtime_ns for path in uninterrupted.iterdir()} == before
    code, _, err = run_cli("copruning", "--out", str(uninterrupted), "--resume", "--epochs", "3")
    assert code == 2 and "train.epochs: 2 -> 3" in err  # a finished run is not extended either


def test_resuming_a_finished_run_removes_a_resume_state_left_by_a_late_kill(run_cli, uninterrupted, tmp_path):
    run = Path(shutil.copytree(uninterrupted, tmp_path / "run"))
    model = (run / "model.pt").read_bytes()
    shutil.copy(run / "model.pt", run / training.RESUME_STATE)  # killed after model.pt, before resume.pt went
    code, out, _ = run_cli("copruning", "--out", str(run), "--resume")
    assert code == 0 and "nothing to do" in out
    assert sorted(path.name for path in run.iterdir()) == FILES and (run / "model.pt").read_bytes() == model


def test_resume_without_a_saved_run_and_no_checkpoint_are_refused(run_cli, tmp_path):
    code, _, err = run_cli("copruning", "--out", str(tmp_path), "--resume")
    assert code == 2 and "holds no co-pruning run to resume" in err and "Traceback" not in err
    code, _, err = run_cli("copruning", "--out", str(tmp_path / "new"))
    assert code == 2 and "--checkpoint is required" in err and not (tmp_path / "new").exists()


def test_the_quickstart_stage_resumes_a_killed_copruning(dense_checkpoint, tmp_path, monkeypatch):
    settings = CopruningStageSettings(target_mac_fraction=0.5, epochs=2, batch_size=8, tile_size=4)
    with pytest.MonkeyPatch.context() as dying:
        _dies_at_second_epochs_second_step(dying, Killed)
        with pytest.raises(Killed):
            run_copruning_stage(settings, dense_checkpoint, tmp_path)
    epochs_run = []
    epoch = training._epoch
    monkeypatch.setattr(training, "_epoch", lambda *a, **k: epochs_run.append(k["epoch"]) or epoch(*a, **k))
    result = run_copruning_stage(settings, dense_checkpoint, tmp_path)
    assert epochs_run == [1, 0, 1]  # only the killed epoch again, then the data-only co-pruning
    assert len(load_checkpoint(tmp_path / "model.pt").history) == 2 and not (tmp_path / "resume.pt").exists()
    assert "co-pruned" in result.table.index
    assert FallbackCalibration.load(tmp_path / "fallback.json").input_hw == (16, 16)
    assert "dense fallback measured here" in result.text and "x dense's speed" in result.text
