"""Two ``dance3d study run`` workers share one study on a real PostgreSQL server; one is SIGKILLed mid-trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from postgres_server import postgres_bin, postgres_server

from studies import load_study, open_storage

BIN = postgres_bin()
GRACE_S = 4  # seconds without a heartbeat before a trial is stale; a loaded machine can delay one


def _skip_reason() -> str | None:
    if BIN is None:
        return "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _worker(checkpoint: str, url: str, trials: int, seed: int, log: Path) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "dance3d", "study", "run", "--checkpoint", checkpoint, "--storage", url,
        "--study-name", "shared", "--trials", str(trials), "--seed", str(seed), "--limit", "8",
        "--repeats", "40", "--set", "study.latency_warmup=0", "--set", "study.heartbeat_interval_s=1",
        "--set", f"study.grace_period_s={GRACE_S}", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _running_trial_of(url: str, pid: int, *, timeout_s: float = 120.0) -> int:
    """Number of a trial worker ``pid`` is measuring now: all knobs sampled, not finished (polls the storage)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            study = load_study(open_storage(url), "shared")
        except Exception:  # the study does not exist yet
            time.sleep(0.2)
            continue
        num_knobs = len(study.user_attrs.get("dance3d", {}).get("space", {}).get("knobs", [None]))
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("worker", "").endswith(f":{pid}") and len(trial.params) == num_knobs:
                return trial.number
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} never ran a trial")


def _kill_mid_trial(proc: subprocess.Popen, url: str) -> int:
    """SIGKILL worker ``proc`` while it measures a trial; that trial's number.

    The worker is stopped (SIGSTOP) before its trial's state is checked, so the trial cannot finish
    between the check and the kill; if it finished before the stop, the worker goes on to its next one.
    """
    while True:
        number = _running_trial_of(url, proc.pid)
        proc.send_signal(signal.SIGSTOP)
        if load_study(open_storage(url), "shared").trials[number].state == TrialState.RUNNING:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return number
        proc.send_signal(signal.SIGCONT)


def test_killed_worker_trial_is_failed_retried_and_study_resumes(dynamic_checkpoint, tmp_path):
    with postgres_server(BIN) as url:
        a = _worker(dynamic_checkpoint, url, 6, 1, tmp_path / "a.log")
        b = _worker(dynamic_checkpoint, url, 6, 2, tmp_path / "b.log")
        try:
            killed = _kill_mid_trial(a, url)
            # Left as it was by the kill; only another worker's stale-heartbeat check can fail it, and b
            # may already have, if it started a trial more than GRACE_S after a's last heartbeat.
            state = load_study(open_storage(url), "shared").trials[killed].state
            assert state in (TrialState.RUNNING, TrialState.FAIL)
            assert b.wait(timeout=240) == 0, (tmp_path / "b.log").read_text()
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.kill()
        time.sleep(GRACE_S + 1)  # the killed trial's heartbeat is now stale
        c = _worker(dynamic_checkpoint, url, 8, 3, tmp_path / "c.log")
        assert c.wait(timeout=240) == 0, (tmp_path / "c.log").read_text()

        study = load_study(open_storage(url), "shared")
        trials = study.get_trials(deepcopy=False)
        by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
        assert len(by_state[TrialState.COMPLETE]) == 8  # resumed to the new budget
        assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
        assert study.trials[killed].state == TrialState.FAIL
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        assert retries[0].params == study.trials[killed].params
        assert sorted(t.number for t in trials) == list(range(len(trials)))  # each trial recorded once
        for trial in by_state[TrialState.COMPLETE]:
            assert trial.values[0] == trial.user_attrs["accuracy"]
            assert trial.values[1] == trial.user_attrs["mac_fraction"]
            assert set(trial.user_attrs["knobs"]) == set(trial.params)
        workers = {t.user_attrs["worker"] for t in by_state[TrialState.COMPLETE]}
        assert len(workers) >= 2  # the survivor and the resuming run both contributed
