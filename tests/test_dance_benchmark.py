"""``benchmarks/dance_moving_digits.py``: a ``--quick`` smoke run, and bad input as one error line."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from dance3d.benchmark_results import validate_result

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dance_moving_digits.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("dance_moving_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("aap.settle_epochs=1", "unknown config key(s) aap.settle_epochs"),
        ("dynamic.channel_context_shift=true", "unknown config key(s) dynamic.channel_context_shift"),
        ("comparison.static_targets=[dance_target_0.3]", "are not runs"),
        ("comparison.test_clips=0", "must be >= 1"),
        ("ava.epochs=many", "expected an integer"),
    ],
)
def test_bad_settings_exit_2_with_one_line(benchmark, tmp_path, capsys, override, message):
    argv = ["--dense-checkpoint", str(tmp_path / "none.pt"), "--results-dir", str(tmp_path), "--set", override]
    assert benchmark.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_tags_name_quick_runs_tasks_and_seeds(benchmark):
    def tag(*argv: str, task: str = "direction") -> str:
        return benchmark.result_tag(benchmark.parse_args(list(argv)), task)

    assert tag() == "default"
    assert tag("--quick") == "quick"
    assert tag("--tag", "movers", "--seed", "2") == "movers-seed2"
    assert tag("--tag", "low", task="digit-direction") == "digit-direction-low"


def test_shortcut_flags_and_set_reach_the_experiment_config(benchmark):
    args = benchmark.parse_args(["--quick", "--seed", "3", "--test-clips", "20", "--retarget"]
                                + ["--extra-static-frame-keep", "0.25", "--set", "aap.mac_penalty=8"])  # fmt: skip
    config = benchmark.experiment_config(args)
    assert config.comparison.test_clips == 20 and config.comparison.retarget
    assert config.comparison.extra_static_frame_keeps == (0.25,)
    assert config.comparison.train_clips == 48  # the smoke preset's
    assert config.aap.mac_penalty == 8.0 and config.aap.seed == 3 and config.ava.seed == 3
    assert not config.aap.progress


@pytest.mark.slow
def test_quick_run_writes_a_schema_valid_result_with_its_table_and_figures(benchmark, trained_tiny, tmp_path):
    argv = ["--dense-checkpoint", trained_tiny, "--quick", "--results-dir", str(tmp_path)]
    argv += ["--train-clips", "16", "--test-clips", "16", "--set", "comparison.val_clips=16"]
    argv += ["--set", "comparison.latency_clips=1", "--set", "comparison.compile_controller=false"]
    assert benchmark.main(argv) == 0
    folder = tmp_path / "dance_moving_digits" / "quick"
    result = json.loads((folder / "result.json").read_text())
    assert validate_result(result) == [] and result["benchmark"] == "dance_moving_digits" and result["quick"]
    models = {"dense", "dance", "dance_without_ava", "dance_target_0.5"}
    models |= {"static_at_dance", "static_frames_at_dance", "static_unrounded_at_dance"}
    assert set(result["runs"]) | {"dense"} == models
    clips = pd.read_parquet(folder / "clips.parquet")
    assert set(clips["model"]) == models and len(clips) == 16 * len(models)
    assert "dance_vs_static_at_dance" in result["paired_comparisons"]
    assert "dance_beats_static_baseline_at_dance" in result["targets"]
    assert all((folder / name).stat().st_size > 0 for name in result["figures"])
    assert not (folder / "partial.json").exists()
