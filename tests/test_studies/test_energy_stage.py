"""The quickstart's energy stage on a faked RAPL meter (a powercap tree whose counter advances in real
time) and on a machine with no meter."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from model_helpers import make_dense
from study_helpers import DATA, dynamic_model, fast_config
from test_profiling.profiling_fakes import RaplCounter, make_powercap, meters_look_under

from dance3d.dynamic import set_execution_mode
from profiling.energy_stage import energy_rows, energy_section, open_energy_stage
from studies import run_study, study_status
from studies.objectives import ENERGY_OBJECTIVE, with_energy_objective

POWER_W = 20.0


@pytest.fixture
def sysfs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every meter looks under ``tmp_path`` (RAPL, INA3221) and jtop is not installed."""
    return meters_look_under(tmp_path / "root", monkeypatch)


def test_energy_stage_measures_joules_per_clip_and_the_study_front_is_energy_accuracy(
    sysfs_root: Path, tmp_path: Path, dynamic_checkpoint: str
) -> None:
    base = make_powercap(sysfs_root, {0: 0})
    with RaplCounter(base, power_w=POWER_W):
        stage = open_energy_stage("cpu")
        assert stage.meter is not None and stage.meter.name == "rapl"
        clip = torch.zeros(3, DATA.num_frames, DATA.height, DATA.width)
        dance = dynamic_model()
        set_execution_mode(dance, "compact")
        models = {"dense": make_dense().eval(), "dance (compact)": dance}
        rows = energy_rows(models, clip, stage, window_s=0.5, idle_s=0.3)
        objectives = with_energy_objective(("accuracy", "mac_fraction"), meter_works=stage.meter is not None)
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
    assert heading == "Energy (measured: rapl)" and "a study objective wherever a meter works" in text
    assert list(table.index) == ["dense", "dance (compact)"]


def test_without_a_meter_the_report_says_why_in_one_line(sysfs_root: Path) -> None:
    stage = open_energy_stage("cpu")
    assert stage.meter is None
    assert with_energy_objective(("accuracy", "energy_j"), meter_works=True) == ("accuracy", "energy_j")
    assert with_energy_objective(("accuracy",), meter_works=False) == ("accuracy",)
    assert energy_rows({"dense": torch.nn.Identity()}, torch.zeros(1), stage) == []
    heading, text, table = energy_section(stage, [])
    assert heading == "Energy" and table is None and "\n" not in text
    assert text.startswith("Not measured: no energy meter works on this machine (rapl: no RAPL package zones")
    assert "jetson-ina3221: no INA3221 rails" in text and "jtop: jtop is not installed" in text
    assert "dance3d show-env" in text and "chmod o+r" in text
