"""Environment report and the cheap, lazy package import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from profiling_fakes import make_hwmon, write

import profiling
from profiling import collect_env, source_revision


def test_import_is_cheap_and_touches_no_torch_or_matplotlib() -> None:
    code = (
        "import sys, profiling, profiling.meters, profiling.rail_log; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib', 'pandas', 'numpy')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_meters_import_nothing_from_the_profiling_package_above_them() -> None:
    code = (
        "import sys, profiling.meters; "
        "print(sorted(m for m in sys.modules if m.startswith('profiling.') and not m.startswith('profiling.meters')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"  # no profiling <-> profiling.meters import cycle


def test_every_public_name_resolves() -> None:
    for name in profiling.__all__:
        assert getattr(profiling, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = profiling.nope


def test_collect_env_reports_versions_devices_and_meters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    write(tmp_path / "proc/cpuinfo", "processor\t: 0\nmodel name\t: Fake Cortex-A78AE\n")
    write(tmp_path / "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    env = collect_env(root=tmp_path)
    json.dumps(env)
    assert env["cpu_model"] == "Fake Cortex-A78AE"
    assert env["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert env["torch"] == torch.__version__
    assert env["torch_threads"] >= 1
    assert env["devices"][0]["device"] == "cpu"
    meters = {(m["meter"], m["device"]): m for m in env["meters"]}
    assert meters[("jetson-ina3221", "cpu")]["available"] is True
    assert meters[("rapl", "cpu")]["available"] is False
    assert "no RAPL package zones" in meters[("rapl", "cpu")]["reason"]
    assert meters[("jtop", "cpu")]["reason"].startswith("jtop is not installed")
    nvml = [m for m in env["meters"] if m["meter"] == "nvml-energy"]
    assert len(nvml) >= 1 and all(m["reason"] or m["available"] for m in nvml)
    assert len({(m["meter"], m["device"]) for m in env["meters"]}) == len(env["meters"])
    assert env["conditions"]["ina3221_update_interval_ms"] == "6" and env["conditions"]["ina3221_samples"] == "1"


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    done = subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_source_revision_names_the_commit_and_marks_uncommitted_changes(tmp_path: Path) -> None:
    assert source_revision(tmp_path) is None  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert source_revision(tmp_path) == head
    results = tmp_path / "benchmarks/results"
    results.mkdir(parents=True)
    (results / "r.json").write_text("{}")
    _git(tmp_path, "add", "benchmarks")
    _git(tmp_path, "commit", "-q", "-m", "results")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (results / "r.json").write_text('{"new": 1}')  # a run rewrote its results: the code is unchanged
    assert source_revision(results) == head
    (tmp_path / "a.txt").write_text("2")
    assert source_revision(results) == f"{head}-dirty"


def test_source_revision_is_none_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable to find
    assert source_revision() is None
    assert "source_revision" in collect_env(root=tmp_path)
