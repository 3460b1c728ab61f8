"""CLI smoke: latency-table + mdp on tiny-test (1 fine-tune epoch), then eval and profile of the result."""

import json
import re

import pytest

from dance3d.checkpoint import load_checkpoint
from dance3d.cli.main import main


@pytest.fixture(scope="module")
def lut(tmp_path_factory, trained_tiny):
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    code = main(["latency-table", "--checkpoint", trained_tiny, "--threads", "1", "--step", "8", "--repeats", "1",
                 "--calibrate", "2", "--validate", "1", "--out", str(path)])  # fmt: skip
    assert code == 0
    return path


def test_latency_table_json(lut):
    table = json.loads(lut.read_text())
    assert table["runtime"]["threads"] == 1 and table["runtime"]["rounds"] == 3
    assert table["model"]["name"] == "tiny-test"
    assert table["group_grids"]["blocks.2.conv_a"] == [8, 16]
    assert table["env"]["torch"] and len(table["validation"]) == 1 and len(table["calibration"]) == 3
    assert all(v > 0 for row in table["layers"]["blocks.2.conv_b"]["latency_ms"] for v in row)


def test_mdp_then_eval_and_profile(run_cli, tmp_path, trained_tiny, lut):
    # the table is timed on this (shared, noisy) machine: a loose target keeps this flow test reachable
    out = tmp_path / "mdp"
    code, stdout, err = run_cli("mdp", "--checkpoint", trained_tiny, "--latency-table", str(lut),
                                "--target-latency", "0.9", "--out", str(out), "--epochs", "1",
                                "--set", "mdp.importance_batches=2", "--set", "mdp.progress=false",
                                "--set", "train.progress=false")  # fmt: skip
    assert code == 0, err
    assert "MILP: optimal" in stdout
    solution = json.loads((out / "solution.json").read_text())
    assert solution["predicted_ms"] <= solution["budget_ms"] + 1e-6
    assert solution["requested_budget_ms"] == pytest.approx(0.9 * solution["dense_latency_ms"])
    rounds = solution["refinement_rounds"]  # this machine has the table's device: solutions are measured
    assert 1 <= len(rounds) <= 3 and "round 1: budget" in stdout
    assert rounds[0]["effective_budget_ms"] == pytest.approx(solution["requested_budget_ms"])
    assert rounds[-1]["measured_ms"] == solution["measured_ms"] > 0
    assert all(b["effective_budget_ms"] < a["effective_budget_ms"] for a, b in zip(rounds, rounds[1:], strict=False))
    checkpoint = load_checkpoint(out / "model.pt")
    assert checkpoint["kind"] == "pruned" and checkpoint["epochs_done"] == 1
    assert checkpoint["model"]["widths"] == solution["widths"]

    code, stdout, err = run_cli("eval", "--checkpoint", str(out / "model.pt"), "--format", "json")
    assert code == 0, err
    assert json.loads(stdout)["num_clips"] == 24
    code, pruned, err = run_cli("profile", "--checkpoint", str(out / "model.pt"), "--no-energy",
                                "--repeats", "2", "--format", "json")  # fmt: skip
    assert code == 0, err
    code, dense, _ = run_cli("profile", "--checkpoint", trained_tiny, "--no-energy", "--repeats", "2",
                             "--format", "json")  # fmt: skip
    pruned_macs, dense_macs = json.loads(pruned)["macs"], json.loads(dense)["macs"]
    # a table timed during a slow spell can put the dense model inside a 0.9 budget: then nothing is pruned
    full_widths = {g: grid[-1] for g, grid in json.loads(lut.read_text())["group_grids"].items()}
    if solution["widths"] == full_widths and not solution["removed_blocks"]:
        assert pruned_macs == dense_macs
    else:
        assert pruned_macs < dense_macs


@pytest.mark.parametrize(
    ("target", "message"),
    [("0", r"in \(0, 1\]"), ("1.2", r"in \(0, 1\]"), ("-1ms", "> 0 ms"), ("0.00001ms", "unreachable")],
)
def test_bad_targets(run_cli, tmp_path, trained_tiny, lut, target, message):
    code, _, err = run_cli("mdp", "--checkpoint", trained_tiny, "--latency-table", str(lut),
                           f"--target-latency={target}", "--out", str(tmp_path / "x"), "--no-finetune",
                           "--set", "mdp.importance_batches=1", "--set", "mdp.progress=false")  # fmt: skip
    assert code == 2
    assert "error:" in err and re.search(message, err), err


def test_table_for_another_model_is_rejected(run_cli, tmp_path, trained_tiny):
    path = tmp_path / "other.json"
    assert (
        main(
            [
                "latency-table",
                "--model",
                "tiny-test",
                "--num-classes",
                "5",
                "--clip-shape",
                "3x8x32x32",
                "--threads",
                "1",
                "--repeats",
                "1",
                "--rounds",
                "1",
                "--calibrate",
                "0",
                "--validate",
                "0",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    code, _, err = run_cli("mdp", "--checkpoint", trained_tiny, "--latency-table", str(path),
                           "--target-latency", "0.5", "--out", str(tmp_path / "x"), "--no-finetune")  # fmt: skip
    assert code == 2 and "num_classes=5" in err
