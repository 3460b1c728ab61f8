"""The quickstart's energy stage on a faked RAPL meter (a powercap tree whose counter advances in real
time) and on a machine with no meter."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from study_helpers import DATA, fast_config
from test_profiling.profiling_fakes import RaplCounter, make_powercap

from dance3d.quickstart_energy import (
    ENERGY_OBJECTIVE,
    energy_rows,
    energy_section,
    open_energy_stage,
    with_energy_objective,
)
from profiling.meters import jetson, rapl
from studies import run_study, study_status

POWER_W = 20.0


@pytest.fixture
def sysfs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every meter looks under ``tmp_path`` (RAPL, INA3221) and jtop is not installed."""
    root = tmp_path / "root"
    monkeypatch.setattr(rapl, "POWERCAP_DIR", str(root / "sys/class/powercap"))
    monkeypatch.setattr(jetson, "HWMON_DIR", str(root / "sys/class/hwmon"))
    monkeypatch.setattr(jetson, "IIO_GLOB", str(root / "sys/bus/i2c/drivers/ina3221x/*/iio:device*").lstrip("/"))
    monkeypatch.setitem(sys.modules, "jtop", None)
    return root


def test_energy_stage_measures_joules_per_clip_and_the_study_front_is_energy_accuracy(
    sysfs_root: Path, tmp_path: Path, dense_checkpoint: str, dynamic_checkpoint: str
) -> None:
    base = make_powercap(sysfs_root, {0: 0})
    with RaplCounter(base, power_w=POWER_W):
        stage = open_energy_stage("cpu")
        assert stage.meter is not None and stage.meter.name == "rapl"
        clip = torch.zeros(3, DATA.num_frames, DATA.height, DATA.width)
        rows = energy_rows(Path(dense_checkpoint), Path(dynamic_checkpoint), clip, stage, window_s=0.5, idle_s=0.3)
        objectives = with_energy_objective(("accuracy", "mac_fraction"), stage)
        stage.close()
        config = fast_config(objectives=objectives, trials=2, startup_trials=1)
        storage = f"sqlite:///{tmp_path / 'study.db'}"
        run = run_study(config, checkpoint=dynamic_checkpoint, storage=storage, split="val", limit=8, progress=False)
    assert [r["model"] for r in rows] == ["dense", "dance (compact)"]
    for row in rows:
        assert row["energy_status"] == "ok"
        assert row["power_w"] == pytest.approx(POWER_W, rel=0.15) and row["window_s"] >= 0.5
        expected_mj = POWER_W * row["window_s"] / row["clips_in_window"] * 1e3
        assert row["energy_per_clip_mj"] == pytest.approx(expected_mj, rel=0.15)
        assert abs(row["dynamic_energy_per_clip_mj"]) < 0.2 * row["energy_per_clip_mj"]  # constant power: ~idle
    assert objectives == ("accuracy", "mac_fraction", ENERGY_OBJECTIVE)
    front = study_status(run.study).pareto
    assert ENERGY_OBJECTIVE in front and len(front) >= 1
    assert all(math.isfinite(e) and e > 0 for e in front[ENERGY_OBJECTIVE])
    heading, text, table = energy_section(stage, rows)
    assert heading == "Energy (measured: rapl)" and "energy per clip as an objective" in text
    assert list(table.index) == ["dense", "dance (compact)"]


def test_without_a_meter_the_report_says_why_in_one_line(sysfs_root: Path) -> None:
    stage = open_energy_stage("cpu")
    assert stage.meter is None
    assert with_energy_objective(("accuracy", "mac_fraction"), stage) == ("accuracy", "mac_fraction")
    assert energy_rows(Path("unused"), Path("unused"), torch.zeros(1), stage) == []
    heading, text, table = energy_section(stage, [])
    assert heading == "Energy" and table is None and "\n" not in text
    assert text.startswith("Not measured: no energy meter works on this machine (rapl: no RAPL package zones")
    assert "jetson-ina3221: no INA3221 rails" in text and "jtop: jtop is not installed" in text
    assert "dance3d show-env" in text and "chmod o+r" in text
