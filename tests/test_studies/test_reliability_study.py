"""Studies: a killed worker's trial is retried at once, concurrent creation of a SQLite file, deploy checks weights."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest
from optuna.trial import TrialState
from study_helpers import fast_config

from dance3d.checkpoint import load_checkpoint, save_checkpoint
from dance3d.errors import ConfigError
from studies import run_study
from studies.deploy import deploy_trial
from studies.storage import open_storage, study_names

CLIPS = 8


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_killed_workers_trial_is_retried_by_the_resumed_run(dynamic_checkpoint, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = fast_config(trials=2, grace_period_s=120, heartbeat_interval_s=30)
    study = run_study(config, checkpoint=dynamic_checkpoint, storage=url, limit=CLIPS, progress=False).study
    killed = study.ask()  # what a worker killed mid-trial leaves: RUNNING, its pid gone
    killed.set_user_attr("worker", f"{socket.gethostname()}:{_dead_pid()}")
    killed.suggest_float("stage0.frames_offset", -8.0, 8.0)

    resumed = run_study(
        fast_config(trials=3, grace_period_s=120, heartbeat_interval_s=30),
        checkpoint=dynamic_checkpoint,
        storage=url,
        limit=CLIPS,
        progress=False,
    ).study  # well within the 2-minute grace period
    trials = {t.number: t for t in resumed.get_trials()}
    assert trials[killed.number].state == TrialState.FAIL
    assert "died" in trials[killed.number].user_attrs["fail_reason"]
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params["stage0.frames_offset"] == killed.params["stage0.frames_offset"]
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == 3
    assert not [t for t in trials.values() if t.state in (TrialState.WAITING, TrialState.RUNNING)]


def test_concurrent_runs_create_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    barrier, errors = threading.Barrier(4), []

    def open_at_once() -> None:
        barrier.wait()
        try:
            open_storage(url)
        except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(str(error))

    threads = [threading.Thread(target=open_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert study_names(open_storage(url, must_exist=True)) == []


def test_deploy_refuses_a_checkpoint_with_other_weights(dynamic_checkpoint, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = run_study(
        fast_config(trials=1), checkpoint=dynamic_checkpoint, storage=url, limit=CLIPS, progress=False
    ).study
    other = load_checkpoint(dynamic_checkpoint)
    shifted = {k: v + 0.01 if v.is_floating_point() else v for k, v in other.state_dict.items()}
    impostor = save_checkpoint(other.replace(state_dict=shifted), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="is not the model study .* searched"):
        deploy_trial(study, 0, tmp_path / "out.pt", checkpoint=impostor)
    assert not (tmp_path / "out.pt").exists()
    copy = tmp_path / "copy.pt"
    shutil.copy(dynamic_checkpoint, copy)  # the same weights elsewhere are fine
    assert deploy_trial(study, 0, tmp_path / "out.pt", checkpoint=copy).path.is_file()
    with pytest.raises(ConfigError, match="other weights_sha256"):
        run_study(fast_config(trials=2), checkpoint=impostor, storage=url, limit=CLIPS, progress=False)
