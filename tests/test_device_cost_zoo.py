"""The zoo cost benchmark: cuts per axis with their counted MACs and measured latency, its result and bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dance3d.benchmark_results import RESULT_FILE, validate_result
from dance3d.dance.device_cost import BlockCostTable
from dance3d.dance.device_cost_measure import OperatingPoint, build_cost_table
from dance3d.dance.device_cost_zoo import ALL_KEPT, CUTS, cut_points, measure_cuts, targets
from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime
from dance3d.models import create_model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_cost_zoo.py"
FAST = LatencyRuntime(threads=1, warmup=1, repeats=2, rounds=1)
SHAPE = (4, 32, 32)
CONFIG = DynamicConfig(channel_multiple=4, tile_size=4)  # tiny-test then has levels on all three axes
AXES = ("frames", "channels", "tiles")


def _model(shape=SHAPE, config=CONFIG):
    torch.manual_seed(0)
    return convert_model(create_model("tiny-test", num_classes=4).eval(), clip_shape=shape, config=config)


@pytest.fixture(scope="module")
def table() -> BlockCostTable:
    return build_cost_table(_model(), {"name": "tiny-test", "num_classes": 4}, runtime=FAST, progress=False)


def test_each_cut_cuts_only_its_axes():
    model = _model()
    full = OperatingPoint(1.0).levels(model)
    points, skipped = cut_points(model, (0.5, 0.25))
    assert skipped == [] and set(points) == {ALL_KEPT} | {f"{c}@{f}" for c in CUTS for f in (0.5, 0.25)}
    assert points[ALL_KEPT].levels == full
    for name, point in points.items():
        if point.cut == "none":
            continue
        assert point.levels == OperatingPoint(point.keep_fraction, CUTS[point.cut]).levels(model), name
        for block, (levels, whole) in enumerate(zip(point.levels, full, strict=True)):
            for axis, count, total in zip(AXES, levels, whole, strict=True):
                assert count == total if axis not in CUTS[point.cut] else count <= total, (name, block, axis)
        assert any(level != whole for level, whole in zip(point.levels, full, strict=True)), name
    assert points["all@0.5"].levels == OperatingPoint(0.5).levels(model)


def test_rows_count_macs_per_cut_and_time_them_beside_all_kept(table):
    rows, skipped = measure_cuts(_model(), table, FAST, keep_fractions=(0.5, 0.25))
    assert skipped == []
    by_name = {r["point"]: r for r in rows}
    assert set(by_name) == {ALL_KEPT} | {f"{c}@{f:g}" for c in CUTS for f in (0.5, 0.25)}
    kept = by_name[ALL_KEPT]
    assert kept["mac_fraction"] == pytest.approx(1.0, abs=1e-6)
    assert kept["latency_ratio"] == 1.0 and kept["predicted_ratio"] == pytest.approx(1.0)
    for row in rows:
        assert row["measured_ms"] > 0 and row["predicted_ms"] > 0
        assert row["latency_ratio"] == pytest.approx(row["measured_ms"] / kept["measured_ms"])
        assert row["realisation"] == pytest.approx(row["mac_fraction"] / row["latency_ratio"])
        if row["cut"] != "none":
            assert 0 < row["mac_fraction"] < 1 - 1e-3, row["point"]
    for fraction in ("0.5", "0.25"):  # cutting all three axes counts fewer MACs than cutting any one of them
        single = [by_name[f"{axis}@{fraction}"]["mac_fraction"] for axis in AXES]
        assert by_name[f"all@{fraction}"]["mac_fraction"] < min(single)
    for cut in CUTS:  # keeping less counts fewer MACs
        assert by_name[f"{cut}@0.25"]["mac_fraction"] < by_name[f"{cut}@0.5"]["mac_fraction"]


def test_a_clip_with_nothing_to_cut_is_refused():
    with pytest.raises(ConfigError, match="nothing to cut"):
        cut_points(_model((1, 4, 4), DynamicConfig()), (0.5,))  # one frame, tile, channel level per block


def _row(point: str, mac_fraction: float, latency_ratio: float, prediction_error_pct: float = 0.0) -> dict:
    cut = "none" if point == ALL_KEPT else point.split("@")[0]
    return {"point": point, "cut": cut, "mac_fraction": mac_fraction, "latency_ratio": latency_ratio,
            "prediction_error_pct": prediction_error_pct}  # fmt: skip


def test_targets_compare_macs_and_the_table_with_measured_time():
    check = [{"error_pct": 3.0}, {"error_pct": -9.0}]
    close = [_row(ALL_KEPT, 1.0, 1.0), _row("frames@0.5", 0.5, 0.52), _row("all@0.5", 0.2, 0.21, 12.0)]
    assert targets(check, close) == {
        "table_prediction_within_10pct": True,
        "table_predicts_cuts_within_10pct": False,
        "macs_predict_latency_within_10pct": True,
    }
    far = [_row(ALL_KEPT, 1.0, 1.0), _row("frames@0.5", 0.5, 0.52), _row("channels@0.5", 0.3, 0.73)]
    got = targets([*check, {"error_pct": 11.0}], far)
    assert not got["table_prediction_within_10pct"] and got["table_predicts_cuts_within_10pct"]
    assert not got["macs_predict_latency_within_10pct"]
    assert not targets(check, [_row(ALL_KEPT, 1.0, 1.0)])["macs_predict_latency_within_10pct"]  # no cut: no pass


def test_quick_run_writes_a_valid_result_figure_and_table_in_the_work_dir(tmp_path):
    command = [sys.executable, str(SCRIPT), "--quick", "--model", "tiny-test", "--clip", "8", "32", "32",
               "--results-root", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "results" / "device_cost_zoo" / "default-tiny-test-quick"
    assert sorted(p.name for p in folder.iterdir()) == ["macs_vs_latency.png", RESULT_FILE]
    result = json.loads((folder / RESULT_FILE).read_text())
    assert validate_result(result) == [] and result["quick"] is True
    assert result["settings"]["model"] == "tiny-test" and result["settings"]["clip"] == [8, 32, 32]
    assert set(result["targets"]) >= {"table_prediction_within_10pct", "macs_predict_latency_within_10pct"}
    assert [r["keep_fraction"] for r in result["table_check"]] == [1.0, 0.75, 0.5, 0.25]
    cut = {r["cut"] for r in result["cuts"]}
    assert {"none", "frames", "all"} <= cut  # tiny-test's 8 and 16 channels are one level each at multiple 16
    assert "channels@0.5" in result["skipped_cuts"] and "tiles@0.5" in result["skipped_cuts"]
    assert all(r["mac_fraction"] < 1 for r in result["cuts"] if r["cut"] != "none")
    table = BlockCostTable.load(tmp_path / "work" / "default-tiny-test-quick" / "cost_table.json")
    assert table.model["name"] == "tiny-test" and table.clip_shape == (3, 8, 32, 32)


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("device_cost_zoo_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _benchmark_main():
    return _benchmark_module().main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "simvp-test"], "is a forecaster"),
        (["--clip", "8", "112"], "--clip 8 112: give 3 positive integers"),
        (["--clip", "0", "32", "32"], "give 3 positive integers"),
        (["--clip", "a", "32", "32"], "give 3 positive integers"),
        (["--model", "tiny-test", "--clip", "1", "4", "4"], "nothing to cut"),
        (["--threads", "0"], "--threads 0: give a positive integer"),
        (["--device", "abacus"], "must be auto, cpu, cuda, cuda:N or mps, got 'abacus'"),
        *([(["--device", "cuda"], "no CUDA GPU is available")] if not torch.cuda.is_available() else []),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    code = _benchmark_main()(["--quick", "--results-root", str(tmp_path / "results"),
                              "--work-dir", str(tmp_path / "work"), *args])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("device_cost_zoo: error:") and message in err
    assert not (tmp_path / "results").exists()


def test_energy_joins_the_table_with_a_meter_and_says_why_without_one(tmp_path, monkeypatch, capsys):
    from test_profiling.profiling_fakes import ScriptedMeter

    from dance3d.dance.device_cost_zoo import SETTINGS, run_zoo_cost

    settings = replace(SETTINGS["quick"], model="tiny-test", clip=(8, 32, 32))
    meter = ScriptedMeter([0.25] * 200, duration_s=0.1)
    table = run_zoo_cost(settings, work_dir=tmp_path / "metered", meter=meter, progress=False)["table"]
    assert table["energy"] == "ok (scripted)" and table["dense_j"] > 0 and meter.windows > 1
    assert BlockCostTable.load(table["path"]).has_energy

    module = _benchmark_module()
    monkeypatch.setattr(module, "resolve_meter", lambda meter, device: (None, "rapl: no RAPL package zones"))
    args = ["--quick", "--model", "tiny-test", "--clip", "8", "32", "32", "--energy",
            "--results-root", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work")]  # fmt: skip
    assert module.main(args) == 0
    capsys.readouterr()
    folder = tmp_path / "results" / "device_cost_zoo" / "default-tiny-test-quick"
    table = json.loads((folder / RESULT_FILE).read_text())["table"]
    assert table["energy"] == "unavailable: rapl: no RAPL package zones" and table["dense_j"] is None
