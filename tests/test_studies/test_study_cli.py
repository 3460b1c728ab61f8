"""``dance3d study``: run/status/plot/export end to end on a tiny checkpoint, and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

import studies.measure
from dance3d.cli.main import main
from profiling.meters.select import MeterSelection

FAST = ["--limit", "6", "--repeats", "1", "--set", "study.latency_warmup=0", "--no-progress"]


@pytest.fixture
def no_meter(monkeypatch):
    """This machine may or may not have RAPL; make 'no meter works' certain."""
    monkeypatch.setattr(studies.measure, "select_meter", lambda device: MeterSelection(None, {"rapl": "no access"}))


def test_cli_run_status_plot_export(dynamic_checkpoint, dense_checkpoint, tmp_path, capsys, no_meter):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", dynamic_checkpoint, "--storage", url, "--trials", "3", *FAST]
    args = ["--objectives", "accuracy,energy_per_clip_j", "--energy-estimate", "1e-9,1e-11,2.0"]
    assert (
        main([*run, *args, "--constraint", "mac_fraction<=0.95", "--baseline-checkpoint", f"static={dense_checkpoint}"])
        == 0
    )
    assert "complete 3" in capsys.readouterr().out
    assert main(["study", "status", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "objectives accuracy, energy_per_clip_j; constraints mac_fraction<=0.95" in out and "Pareto set" in out
    assert main(["study", "plot", "--storage", url, "--out", str(tmp_path / "fig")]) == 0
    assert {"front_energy_per_clip_j.svg", "hypervolume.png"} <= {p.name for p in (tmp_path / "fig").iterdir()}
    assert main(["study", "export", "--storage", url, "--out", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    trials = table[table["source"] == "trial"]
    assert len(trials) == 3 and set(trials["energy_source"]) == {"estimated"}
    assert set(trials["energy_label"]) == {"estimated"} and (trials["energy_per_clip_j"] > 0).all()
    assert set(table.loc[table["source"] == "baseline", "name"]) == {"dense", "static"}


def test_axis_label_says_energy_is_estimated():
    from studies.plots import axis_label

    frame = pd.DataFrame({"energy_label": ["estimated", None]})
    assert axis_label("energy_j", frame) == "energy per batch (J) [estimated]"
    assert axis_label("accuracy", frame) == "top-1 accuracy"


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_errors_are_one_clear_line(dynamic_checkpoint, dense_checkpoint, tmp_path, capsys, no_meter):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = ["study", "run", "--checkpoint", dynamic_checkpoint, "--storage", url, "--trials", "1", *FAST]
    assert "unknown objective(s) speed" in _error([*run, "--objectives", "accuracy,speed"], capsys)
    assert "use <= or >=" in _error([*run, "--constraint", "accuracy>0.9"], capsys)
    assert "--energy-estimate" in _error([*run, "--objectives", "accuracy,energy_j"], capsys)
    assert "not available" in _error([*run, "--set", "study.execution_modes=turbo"], capsys)
    bad_ck = ["study", "run", "--checkpoint", dense_checkpoint, "--storage", url, *FAST]
    assert "needs a dynamic model" in _error(bad_ck, capsys)
    pg = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    assert "cannot open storage" in _error([*run[:4], "--storage", pg, *run[6:]], capsys)
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert "storage file not found" in _error(["study", "status", "--storage", missing], capsys)
    assert main([*run]) == 0
    capsys.readouterr()
    for action in (["status"], ["plot", "--out", str(tmp_path / "f")], ["export", "--out", str(tmp_path / "t.csv")]):
        err = _error(["study", *action, "--storage", url, "--study-name", "nope"], capsys)
        assert "study 'nope' not found" in err and "dance3d-study" in err
