"""``benchmarks/dance_seeds.py``: DANCE over several seeds against one dense model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from dance3d.benchmark_results import validate_result

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dance_seeds.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("dance_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_preset_needs_a_dense_checkpoint_and_bad_overrides_are_refused(benchmark, tmp_path, capsys):
    argv = ["--preset", "default", "--dense-checkpoint", str(tmp_path / "none.pt"), "--results-root", str(tmp_path)]
    assert benchmark.main(argv) == 2
    assert "no dense checkpoint" in capsys.readouterr().err
    assert benchmark.main(["--set", "aap.lr=fast", "--results-root", str(tmp_path)]) == 2
    assert "aap.lr" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_overrides_apply_on_top_of_the_preset(benchmark):
    settings = benchmark.settings_for(benchmark.parse_args(["--preset", "quickstart", "--set", "aap.joint_lr=1e-4"]))
    assert settings.aap.joint_lr == 1e-4 and settings.aap.target_mac_fraction == 0.40  # the quickstart preset's


@pytest.mark.slow  # trains a tiny dense model, then AVA + AAP twice
def test_quick_run_reports_every_seed_against_dense(benchmark, tmp_path):
    argv = ["--quick", "--seeds", "0", "1", "--threads", "1", "--dense-checkpoint", str(tmp_path / "dense.pt")]
    argv += ["--work-dir", str(tmp_path / "work"), "--results-root", str(tmp_path / "results")]
    assert benchmark.main(argv) == 0
    result = json.loads((tmp_path / "results" / "dance_seeds" / "quick-quickstart" / "result.json").read_text())
    assert validate_result(result) == [] and [row["seed"] for row in result["seeds"]] == [0, 1]
    assert result["spread"]["top1"]["min"] <= result["spread"]["top1"]["mean"] <= result["spread"]["top1"]["max"]
    assert set(result["targets"]) == {"every_seed_within_1_point_of_dense", "every_seed_within_0.05_of_the_mac_target"}


def test_dense_per_seed_is_the_quickstart_presets(benchmark):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args(["--preset", "default", "--dense-per-seed"])
    assert exit_info.value.code == 2


@pytest.mark.slow  # trains a tiny dense model per seed, then AVA + AAP on each
def test_dense_per_seed_pairs_each_seed_with_its_own_dense_model(benchmark, tmp_path):
    argv = ["--quick", "--dense-per-seed", "--seeds", "0", "1", "--threads", "1", "--work-dir", str(tmp_path / "w")]
    assert benchmark.main([*argv, "--results-root", str(tmp_path / "results")]) == 0
    folder = tmp_path / "results" / "dance_seeds" / "quick-quickstart-dense-per-seed"
    result = json.loads((folder / "result.json").read_text())
    assert validate_result(result) == [] and result["dense"]["top1"] is None
    assert sorted(p.name for p in (tmp_path / "w" / folder.name).glob("dense-seed*")) == ["dense-seed0", "dense-seed1"]
    for row in result["seeds"]:
        assert row["drop_points"] == pytest.approx(100 * (row["dense_top1"] - row["top1"]))
