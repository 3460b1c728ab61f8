"""The quickstart pipeline end to end on tiny settings: every stage's section and figure, and resume."""

from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pandas as pd
import pytest

from dance3d.checkpoint import load_checkpoint
from dance3d.copruning.quickstart_stage import CopruningStageSettings
from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.dance.device_cost import BlockCostTable
from dance3d.data.forecast.config import ForecastDataConfig
from dance3d.data.registry import DataConfig
from dance3d.loading import load_model
from dance3d.mdp import lut_measure
from dance3d.mdp.lut import LatencyRuntime
from dance3d.mdp.pipeline import MdpSettings
from dance3d.quickstart import QuickstartConfig, run_quickstart
from dance3d.quickstart_copruning_study import CopruningStudySettings
from dance3d.quickstart_device_aware import DeviceAwareStageSettings
from dance3d.quickstart_forecast import ForecastStageSettings
from dance3d.reporting import paired_accuracy
from profiling import count_macs
from studies import StudyConfig

SECTIONS = (
    "Data", "Dense training", "Dense evaluation", "AVA", "AAP", "across seeds", "budgets", "Profile", "Energy", "MDP",
    "Device-aware", "Study", "Deploy", "Forecasting", "Co-pruning", "co-pruned forecaster's thresholds", "Run",
)  # fmt: skip


def tiny_quickstart(run) -> QuickstartConfig:
    return QuickstartConfig(
        run=replace(run, train=replace(run.train, epochs=1)),
        ava=AvaSettings(epochs=1, batch_size=8, measure_clips=16, progress=False),
        aap=AapSettings(
            epochs=1, joint_epochs=0, batch_size=8, target_mac_fraction=0.5, measure_clips=16, progress=False
        ),
        latency=LatencyRuntime(warmup=1, repeats=2, rounds=1),
        mdp=MdpSettings(target_latency="0.6", importance_batches=1, refine_rounds=1, progress=False),
        mdp_finetune=replace(run.train, epochs=1),
        study=StudyConfig(objectives=("accuracy", "mac_fraction"), trials=3, startup_trials=2, latency_repeats=1),
        budget_targets=(0.01, 0.6),  # the first is out of reach: reported, not fatal
        study_clips=8,
        dance_seeds=(1,),
        forecast=ForecastStageSettings(
            data=DataConfig(
                source="storms", forecast=ForecastDataConfig(height=16, width=16, num_train=16, num_val=4, num_test=4)
            ),
            train=replace(run.train, model="simvp-test", epochs=1),
        ),
        copruning=CopruningStageSettings(target_mac_fraction=0.5, epochs=1, batch_size=8),
        copruning_study=CopruningStudySettings(
            study=StudyConfig(objectives=("mse", "mac_fraction"), trials=3, startup_trials=2, latency_repeats=1),
            samples=4,
        ),
        device_aware=DeviceAwareStageSettings(latency_clips=2, repeats=1, compile_controller=False),
    )


def _mac_proportional_ms(fn, x, runtime) -> float:
    """A deterministic timer for the MDP stage: 1 ms per million MACs (real timings of tiny-test are noise)."""
    return 1e-6 * count_macs(fn, x).macs


def test_quickstart_writes_every_section_with_figures_and_resumes(tmp_path, tiny_run_config, monkeypatch):
    monkeypatch.setattr(lut_measure, "_round_median_ms", _mac_proportional_ms)
    out = tmp_path / "quick"
    report = run_quickstart(tiny_quickstart(tiny_run_config), out)
    text = report.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for section in SECTIONS:
        assert any(section in h for h in headings), f"no {section} section in {headings}"
    figures = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert len(figures) >= 10
    for figure in figures:
        assert (out / figure).stat().st_size > 5_000, figure  # a real plot, not an empty canvas
    assert "mean MAC fraction" in text and "complete trials" in text
    assert "Not measured: no energy meter works on this machine (rapl: " in text or "## Energy (measured: " in text
    evals = [
        json.loads(path.read_text())["records"] for path in (out / "aap" / "test_eval.json", out / "dense_eval.json")
    ]
    paired = paired_accuracy(*evals)
    assert f"DANCE {paired['only_a_correct']}, dense {paired['only_b_correct']} (McNemar" in text
    latency = pd.read_csv(out / "latency.csv").set_index("execution")
    assert latency.loc["compact, compiled controller", "mac_fraction"] == latency.loc["compact", "mac_fraction"]
    mdp = pd.read_csv(out / "mdp.csv").set_index("model")
    assert mdp.loc["mdp", "gmacs"] < mdp.loc["dense", "gmacs"] and mdp.loc["mdp", "latency_ms"] > 0
    assert 0.0 <= mdp.loc["mdp", "top1"] <= 1.0 and (out / "mdp" / "model.pt").is_file()

    assert "Targets below what the controller can reach: 0.01." in text and (out / "budgets.png").is_file()
    budget = load_checkpoint(out / "budget-0.60" / "model.pt")["budget"]
    assert budget["mac_fraction"] <= 0.6 and budget["num_clips"] == 8 and budget["split"] == "val"
    assert not (out / "budget-0.01").exists()

    deployed = load_checkpoint(out / "deployed" / "model.pt")
    number = deployed["study_trial"]["number"]
    trial = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}").trials[number]
    assert f"picked trial {number}," in text
    assert deployed["model"]["knobs"] == pytest.approx({k: v for k, v in trial.user_attrs["knobs"].items() if v != 0.0})
    assert json.loads((out / "deployed_eval.json").read_text())["num_clips"] == len(evals[0])

    assert json.loads((out / "dance-seed1" / "aap" / "test_eval.json").read_text())["num_clips"] == len(evals[0])
    assert text.count("| this run (") == 2 and "over 2 seeds" in text  # one table row per seed of this run

    stage = out / "device-aware"
    rows = {row["model"]: row for row in json.loads((stage / "latency.json").read_text())}
    dynamic = ("DANCE charged MACs", "DANCE charged latency", "MDP + DANCE charged latency")
    assert set(rows) == {"dense", "MDP", *dynamic}
    for name in dynamic:
        assert rows[name]["table ms"] > 0 and rows[name]["measured ms"] > 0 and 0 < rows[name]["MAC fraction"] <= 1
    assert rows["dense"]["vs dense"] == 1.0 and rows["dense"]["table ms"] > 0 and rows["MDP"]["table ms"] > 0
    latency = load_model(stage / "dance-latency" / "model.pt")
    stacked = load_model(stage / "mdp-dance" / "aap" / "model.pt")
    for model, table in ((latency, "dance_cost_table.json"), (stacked, "mdp-dance/cost_table.json")):
        assert model.checkpoint["config"]["aap"]["cost"] == "latency"
        assert model.checkpoint["config"]["aap"]["cost_table"] == str(stage / table)
        BlockCostTable.load(stage / table).check_matches(model.model)
    assert stacked.checkpoint.model["backbone"] == load_checkpoint(out / "mdp" / "model.pt").model
    assert "timed side by side at batch 1 on the same 2 test clips" in text

    copruning = json.loads((out / "copruning" / "eval.json").read_text())
    fractions = copruning["copruned"]["mac_fractions"]
    assert len(fractions) == 4 and all(0 < f <= 1.05 for f in fractions)
    assert f"computes **{sum(fractions) / len(fractions):.3f}** of the dense MACs" in text
    assert load_checkpoint(out / "copruning" / "model.pt").kind == "copruned"
    cp_storage = f"sqlite:///{out / 'copruning-study' / 'copruning_study.db'}"
    cp_study = optuna.load_study(study_name=None, storage=cp_storage)
    assert len(cp_study.trials) == 3 and cp_study.metric_names == ["mse", "mac_fraction"]
    assert all(t.values[0] > 0 and 0 <= t.values[1] <= 1.05 for t in cp_study.trials)
    assert (out / "copruning-study" / "front_mac_fraction.png").is_file()
    fastest = min(t.user_attrs["latency_ms"] for t in cp_study.trials)
    assert f"fastest trial {fastest:.2f} ms" in text

    stages = [out / "aap" / "model.pt", out / "dance-seed1" / "aap" / "model.pt", out / "budget-0.60" / "model.pt"]
    stages += [
        out / "lut.json",
        out / "mdp" / "model.pt",
        out / "copruning" / "model.pt",
        out / "copruning" / "eval.json",
        out / "device-aware" / "dance_cost_table.json",
        out / "device-aware" / "dance-latency" / "model.pt",
        out / "device-aware" / "mdp-dance" / "cost_table.json",
        out / "device-aware" / "mdp-dance" / "aap" / "model.pt",
    ]
    mtimes = [p.stat().st_mtime_ns for p in stages]
    run_quickstart(tiny_quickstart(tiny_run_config), out)  # resumes: finished stages reused, study topped up
    assert [p.stat().st_mtime_ns for p in stages] == mtimes
    assert len(optuna.load_study(study_name=None, storage=cp_storage).trials) == 3  # already complete: no new trial
