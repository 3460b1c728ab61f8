"""'dance3d stack': MDP at a latency target, then AVA/AAP charged the pruned model's measured cost table."""

from __future__ import annotations

import json

import pytest
from test_mdp.mdp_helpers import synthetic_table

from dance3d.checkpoint import load_checkpoint, load_network
from dance3d.dance.device_cost import BlockCostTable
from dance3d.dance.stacked import dance_target
from dance3d.errors import ConfigError
from dance3d.loading import load_model
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.lut import LatencyRuntime

QUICK = [
    "--preset", "smoke", "--threads", "2", "--latency-clips", "2",
    "--set", "train.epochs=1", "--set", "mdp.importance_batches=1", "--set", "mdp.measure=false",
    "--set", "mdp.progress=false", "--set", "ava.batch_size=8", "--set", "ava.progress=false",
    "--set", "aap.batch_size=8", "--set", "aap.joint_epochs=0", "--set", "aap.progress=false",
    "--set", "dynamic.channel_multiple=2", "--set", "data.num_train=16", "--set", "data.num_val=8",
    "--set", "data.num_test=8",
]  # fmt: skip


@pytest.fixture(scope="module")
def latency_table(trained_tiny, tmp_path_factory) -> str:
    """A synthetic MDP table of the trained model (no timing: MDP's own tests time tables), with a fast runtime
    for the cost table the stack measures."""
    checkpoint = load_checkpoint(trained_tiny)
    data = checkpoint["data"]
    structure = extract_structure(load_network(checkpoint), (3, data["num_frames"], data["height"], data["width"]))
    table = synthetic_table(structure, spec=checkpoint.model)
    table.runtime = LatencyRuntime(threads=2, warmup=1, repeats=1, rounds=1)
    return str(table.save(tmp_path_factory.mktemp("lut") / "lut.json"))


@pytest.mark.slow  # four stages end to end (MDP, a cost table, AVA, AAP): minutes on the shared 2-core VM
def test_stack_prunes_then_trains_aap_on_the_pruned_models_cost_table(trained_tiny, latency_table, run_cli, tmp_path):
    out = tmp_path / "stack"
    args = ["stack", "--checkpoint", trained_tiny, "--latency-table", latency_table, "--target-latency", "0.6",
            "--dance-target", "0.8", "--out", str(out), *QUICK]  # fmt: skip
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "DANCE on it: latency target" in stdout and "test top-1" in stdout
    summary = json.loads((out / "stack.json").read_text())
    assert load_checkpoint(out / "mdp" / "model.pt").kind == "pruned"
    table = BlockCostTable.load(out / "cost_table.json")
    aap = load_model(out / "aap" / "model.pt")
    table.check_matches(aap.model)  # the table is of the pruned model AAP trained
    assert aap.checkpoint.model["backbone"] == load_checkpoint(out / "mdp" / "model.pt").model
    settings = aap.checkpoint["config"]["aap"]
    assert settings["cost"] == "latency" and settings["cost_table"] == str(out / "cost_table.json")
    assert settings["target_latency_ms"] == pytest.approx(0.8 * table.dense_cost()) == summary["target_cost"]
    assert summary["aap"]["val_table_latency_ms"] > 0 and summary["latency"]["measured_compact_ms"] > 0
    assert 0 <= summary["test"]["top1"] <= 1
    mtime = (out / "aap" / "model.pt").stat().st_mtime
    code, _, err = run_cli(*args)  # a finished run resumes as a no-op for its stages
    assert code == 0, err
    assert (out / "aap" / "model.pt").stat().st_mtime == mtime


def test_stack_refuses_bad_input_before_any_work(trained_tiny, latency_table, run_cli, tmp_path):
    base = ["stack", "--checkpoint", trained_tiny, "--latency-table", latency_table, "--out", str(tmp_path / "s")]
    code, _, err = run_cli(*base, "--target-latency", "0.6", "--cost", "seconds")
    assert code == 2 and "invalid choice" in err
    code, _, err = run_cli(*base[:4], str(tmp_path / "missing.json"), *base[5:], "--target-latency", "0.6")
    assert code == 2 and "latency table not found" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "mdp").exists()


def test_dance_target_is_a_fraction_or_a_value_with_its_unit():
    assert dance_target("0.5", 8.0, cost="latency") == 4.0
    assert dance_target("3ms", 8.0, cost="latency") == 3.0
    assert dance_target("0.02J", 0.1, cost="energy") == pytest.approx(0.02)
    assert dance_target("0.5", 0.1, cost="energy") == pytest.approx(0.05)
    for bad in ("1.5", "-2ms", "fast"):
        with pytest.raises(ConfigError):
            dance_target(bad, 8.0, cost="latency")
    with pytest.raises(ConfigError, match="joules"):
        dance_target("-1J", 0.1, cost="energy")
