"""Every benchmark's --quick smoke run writes a result that follows the schema and holds plausible fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dance3d.benchmark_results import RESULT_FILE, load_results, validate_result
from dance3d.dynamic.compact_calibration import CompactCalibration

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_quick(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / script), "--quick", "--results-root", str(tmp_path / "results"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)


def written_results(tmp_path: Path, benchmark: str, *tags: str) -> list[dict]:
    """The run's result.json files, one per tag and no others, each valid and marked quick."""
    root = tmp_path / "results"
    assert sorted(p.relative_to(root) for p in root.glob(f"**/{RESULT_FILE}")) == sorted(
        Path(benchmark, tag, RESULT_FILE) for tag in tags
    )
    results = load_results(root)
    for result in results:
        assert validate_result(result) == []
        assert (result["benchmark"], result["quick"]) == (benchmark, True)
        assert all(seconds > 0 for seconds in result["timings_s"].values())
    return sorted(results, key=lambda r: tags.index(r["tag"]))


def only_result(tmp_path: Path, benchmark: str, tag: str) -> dict:
    """The run's only result.json, in ``<benchmark>/<tag>/``."""
    return written_results(tmp_path, benchmark, tag)[0]


def dance_operating_point(path: Path) -> Path:
    """A DANCE result holding just what compact_speed reads: keep rates, mean MAC fraction, clip shape."""
    keep_rates = {"frame_keep": 0.6, "channel_keep": 0.6, "tile_keep": 0.9}
    path.write_text(json.dumps({"settings": {"clip_shape": [8, 32, 32]},
                                "runs": {"dance": {"keep_rates": keep_rates, "mean_mac_fraction": 0.4}}}))  # fmt: skip
    return path


def test_compact_speed_quick(tmp_path):
    dance = dance_operating_point(tmp_path / "dance.json")
    done = run_quick("compact_speed.py", tmp_path, "--threads", "1", "--dance-result", str(dance))
    assert done.returncode == 0, done.stderr[-2000:]
    result, calibration = written_results(tmp_path, "compact_speed", "cpu-quick", "calibration-8x32x32-quick")
    assert result["seed"] == 0 and result["settings"]["clip_shapes"] == ["8x32x32"]
    shape = result["results"]["8x32x32"]
    saved = tmp_path / "results" / shape["calibration"]  # what dance3d eval --calibration reads
    assert CompactCalibration.load(saved).choices == calibration["calibration"]["choices"]
    assert calibration["settings"]["clip_shape"] == [8, 32, 32] and calibration["targets"] == {}
    assert [key for key in shape if key.startswith("batch")] == ["batch1", "batch2"]
    for entry in (shape["batch1"], shape["batch2"]):
        assert 0.1 < entry["mac_fraction"] < 1.0
        assert entry["wall_clock_speedup"] > 0
        assert entry["realisation_efficiency"] == pytest.approx(entry["wall_clock_speedup"] * entry["mac_fraction"])
        shares = entry["breakdown"]["shares"]
        assert shares["convolutions"] > 0 and shares["stem"] > 0 and shares["gather"] > 0
        assert all(shares[part] >= 0 for part in ("index: host decisions", "scatter", "controller"))
        assert sum(v for k, v in shares.items() if k != "other (head, Python)") < 1.0  # parts fit in the total
        assert len(entry["breakdown"]["per_block"]) == 4 and all(
            b["dense_ms"] > 0 for b in entry["breakdown"]["per_block"]
        )
    assert set(result["targets"]) == {"8x32x32.batch1_speedup_at_least_2.0", "8x32x32.batch1_efficiency_at_least_0.75"}
    assert "clip        batch" in done.stdout and "convolutions" in done.stdout  # the printed table


def test_compact_speed_without_a_dance_result_is_one_clear_error(tmp_path):
    done = run_quick("compact_speed.py", tmp_path, "--dance-result", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "cannot read DANCE's operating point" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_dense_moving_digits_quick(tmp_path):
    done = run_quick("dense_moving_digits.py", tmp_path, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "dense_moving_digits", "default-quick")
    assert 0.0 <= result["test_top1"] <= 1.0 and result["test_clips"] == 32
    assert len(result["history"]) == result["epochs"] == 1
    assert result["settings"]["config"]["data"]["num_frames"] == 8
    assert 0.0 <= result["redundancy_distribution"]["background_fraction"]["p50"] <= 1.0


def test_study_hypervolume_quick(tmp_path):
    done = run_quick("study_hypervolume.py", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "study_hypervolume", "default-quick")
    assert result["seed"] is None and result["settings"]["trials"] == 12
    assert set(result["summary"]) == {"tpe", "nsga2", "random"}
    assert all(0.0 < s["min_ratio"] <= s["mean_ratio"] <= 1.0 + 1e-9 for s in result["summary"].values())
    assert [r["distinct_points"] <= 12 for r in result["runs"]] == [True] * 3


@pytest.mark.slow  # three Python processes that each import torch: ~20 s of CPU
def test_host_memory_quick(tmp_path):
    done = run_quick("host_memory.py", tmp_path, "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "host_memory", "default-quick")
    assert [row["case"] for row in result["rows"]] == ["8x32x32_b1_model", "8x32x32_b1_stem"]
    assert all(row["default_ms"] > 0 and row["retained_ms"] > 0 for row in result["rows"])
    assert set(result["timings_s"]) == {"default", "retain", "total"}


@pytest.mark.slow  # dense training, a latency table, four fine-tunings and three r2plus1d_18 MILP solves: ~1 min
def test_mdp_moving_digits_quick(tmp_path):
    done = run_quick("mdp_moving_digits.py", tmp_path, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "mdp_moving_digits", "default-quick")
    assert [r["method"] for r in result["rows"]] == ["mdp", "uniform", "magnitude", "greedy"]
    assert all(r["measured_ms"] > 0 and 0.0 <= r["top1"] <= 1.0 for r in result["rows"])
    assert all(r["predicted_ms"] <= result["dense_latency_ms"] for r in result["rows"])
    assert set(result["targets"]) == {"mdp_prediction_within_10pct", "mdp_at_least_as_accurate",
                                      "r2plus1d_solve_under_10s", "mdp_measured_within_budget_2pct"}  # fmt: skip
    assert len(result["r2plus1d_18_solve"]["solves"]) == 3


@pytest.mark.slow  # dense training, a latency table and eight fine-tunings on 8x32x32 clips: ~20 s
def test_mdp_hard_quick(tmp_path):
    done = run_quick("mdp_hard.py", tmp_path, "--out", str(tmp_path / "run"), "--seed", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "mdp_hard", "default-seed1-quick")
    assert result["seed"] == 1 and result["settings"]["finetune"]["seed"] == 1
    assert result["settings"]["data"]["task"] == "digit-direction" and result["settings"]["dense_seed"] == 0
    methods = ["mdp", "uniform", "magnitude", "greedy"]
    assert [(r["target"], r["method"]) for r in result["rows"]] == [(t, m) for t in (0.6, 0.3) for m in methods]
    assert all(r["measured_ms"] > 0 and 0.0 <= r["top1"] <= 1.0 for r in result["rows"])
    assert [(p["target"], p["baseline"]) for p in result["paired"]] == [(t, m) for t in (0.6, 0.3) for m in methods[1:]]
    assert set(result["targets"]) == {"mdp_ahead_of_every_baseline_at_equal_latency",
                                      "blocks_removed_at_some_target", "prediction_within_5pct"}  # fmt: skip
    folder = tmp_path / "results" / "mdp_hard" / "default-seed1-quick"
    clips = pd.read_parquet(folder / "clips.parquet")
    assert len(clips) == (1 + len(result["rows"])) * 48 and set(clips["seed"]) == {1}  # dense + every pick
    top1 = clips.groupby(["target", "method"])["correct"].mean()
    assert all(top1[(r["target"], r["method"])] == pytest.approx(r["top1"]) for r in result["rows"])
    assert (folder / "structures.png").stat().st_size > 5000


def test_mdp_hard_bad_arguments_are_one_clear_error(tmp_path):
    done = run_quick("mdp_hard.py", tmp_path, "--threads", "0")
    assert done.returncode == 2 and "--threads and --dense-epochs must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # four subprocesses that each import torch and decode a video
def test_decode_memory_quick(tmp_path):
    done = run_quick("decode_memory.py", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "decode_memory", "default-quick")
    assert result["settings"]["frames"] == 150
    assert set(result["rows"]) == {"uniform/whole", "uniform/stop_early", "center/whole", "center/stop_early"}
    assert all(row["added_mb"] > 0 for row in result["rows"].values())


@pytest.mark.slow  # dense training, AVA, two AAP runs, a static fine-tune, an MDP table and MDP + DANCE: minutes
def test_device_aware_quick(tmp_path):
    done = run_quick("device_aware.py", tmp_path, "--work-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = only_result(tmp_path, "device_aware", "default-quick")
    assert [r["method"] for r in result["rows"]] == ["dense", "dance_macs", "dance_latency", "static", "mdp_dance"]
    assert all(r["measured_ms"] > 0 and 0.0 <= r["top1"] <= 1.0 for r in result["rows"])
    twin, latency = result["rows"][1], result["rows"][2]
    assert latency["target_latency_ms"] == pytest.approx(twin["val_table_ms"])  # matched cost
    assert [r["keep_fraction"] for r in result["table_check"]] == [1.0, 0.5]
    assert set(result["targets"]) == {
        "latency_objective_ahead_of_mac_objective", "latency_front_covers_mac_front", "table_prediction_within_10pct",
        "latency_objective_within_10pct_of_its_prediction", "stacked_on_front",
    }  # fmt: skip
    (pair,) = result["paired"]
    assert (pair["latency"], pair["macs"]) == (latency["name"], twin["name"])
    assert pair["top1_diff_points"] == pytest.approx(100 * (latency["top1"] - twin["top1"]))
    folder = tmp_path / "results" / "device_aware" / "default-quick"
    assert (folder / "tradeoff.png").is_file() and sorted(p.name for p in folder.iterdir()) == [
        "result.json",
        "tradeoff.png",
    ]
    assert (tmp_path / "runs" / "default-quick" / "cost_table.json").is_file()
