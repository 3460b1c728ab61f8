"""The quickstart's co-pruning stage: bad settings refused up front with their name; a Transformer timed without a
fallback, and its joules measured on a faked RAPL counter; static widths at its MAC fraction; a rerun reuses what it
saved."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from copruning_helpers import train_tiny_forecaster
from test_profiling.profiling_fakes import RaplCounter, make_powercap, meters_look_under

from dance3d.checkpoint import load_checkpoint
from dance3d.copruning.quickstart_stage import LABELS, CopruningStageSettings, run_copruning_stage
from dance3d.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("target_mac_fraction", 1.5, "target_mac_fraction"),
        ("epochs", 0, "train.epochs"),
        ("tile_size", 6, "tile_size"),
        ("latency_samples", 0, "latency_samples"),
        ("latency_repeats", 0, "latency_repeats"),
        ("throughput_batch", 0, "throughput_batch"),
        ("energy_window_s", 0.0, "energy_window_s"),
        ("amplify_epochs", -1, "copruning.amplify_epochs"),
    ],  # fmt: skip
)
def test_bad_stage_settings_are_refused_when_built(field, value, name):
    with pytest.raises((ConfigError, ValueError), match=name):
        CopruningStageSettings(**{field: value})


def test_the_stage_settings_become_the_copruning_run():
    run = CopruningStageSettings(target_mac_fraction=0.4, epochs=2, generator_lr=0.05, amplify_epochs=1).run_config()
    assert run.copruning.target_mac_fraction == 0.4 and run.train.epochs == 2 and run.train.generator_lr == 0.05
    assert run.train.amplify_epochs == 1 and CopruningStageSettings().run_config().train.amplify_epochs == 0
    assert not run.train.progress


def test_the_stage_times_a_transformer_without_a_fallback_and_measures_joules_where_a_meter_works(
    tmp_path, monkeypatch
):
    """The Transformer drops tokens and has no whole-map path: the stage times dense and compact only. With a
    (faked) RAPL counter it measures joules per sample of every timed model. Asked to, it amplifies first and
    says so."""
    dense = train_tiny_forecaster("stformer-test", tmp_path / "fc")
    settings = CopruningStageSettings(target_mac_fraction=0.5, epochs=1, batch_size=8, latency_samples=2,
                                      latency_repeats=1, energy_window_s=0.2, amplify_epochs=1)  # fmt: skip
    base = make_powercap(meters_look_under(tmp_path / "root", monkeypatch), {0: 0})
    with RaplCounter(base, power_w=20.0):
        result = run_copruning_stage(settings, dense, tmp_path / "cp")
    assert "compact execution" in result.text and "fallback" not in result.text
    assert "--amplify-epochs 1`" in result.text and "First the forecaster was fine-tuned 1 epoch(s)" in result.text
    assert (tmp_path / "cp" / "amplify.json").is_file() and (tmp_path / "cp" / "data-only" / "amplify.json").is_file()
    energy = result.text.split("Energy per sample at batch 1, measured with `rapl`")[1]
    for label in LABELS.values():
        assert (f"{label} " in energy) == (label != "with the fallback")
    assert energy.count("x less") == 3  # the co-pruned and static models against the less costly dense layout
    assert not (tmp_path / "cp" / "fallback.json").exists()
    assert 0 < result.table.loc["co-pruned", "MAC fraction"] <= 1.05
    assert result.figures[0].stat().st_size > 5_000
    with pytest.raises(ConfigError, match="train.amplify_epochs: 1 -> 0"):  # not reused under other settings
        run_copruning_stage(replace(settings, amplify_epochs=0), dense, tmp_path / "cp")


@pytest.mark.parametrize("backbone", ["stformer-test", "convlstm-test"])  # SimVP's: test_copruning_resume.py
def test_static_widths_at_the_copruned_cost_are_compared_timed_and_reused(backbone, tmp_path, monkeypatch):
    meters_look_under(tmp_path / "root", monkeypatch)  # no meter: the stage says energy was not measured
    dense = train_tiny_forecaster(backbone, tmp_path / "fc")
    settings = CopruningStageSettings(target_mac_fraction=0.5, epochs=1, batch_size=8, latency_samples=2,
                                      latency_repeats=1, throughput_batch=3)  # fmt: skip
    out = tmp_path / "cp"
    first = run_copruning_stage(settings, dense, out)
    matched = load_checkpoint(out / "model.pt")["copruning"]["val_mac_fraction"]
    static_fraction = first.table.loc["static widths", "MAC fraction"]
    assert 0 < static_fraction <= 1 and static_fraction == pytest.approx(matched, abs=0.1)
    assert "Static pruning at the same cost" in first.text and "Wilcoxon p" in first.text
    timing = first.text.split("At batch 1")[1]
    assert "static widths" in timing and "data mask only" in timing  # timed beside dense and compact
    assert "with channels-last weights" in timing  # both dense layouts, speed-ups over the faster
    assert "Energy per sample: not measured, no energy meter works here" in first.text
    throughput = first.text.split("One batch of ")[1]
    assert throughput.startswith(f"{settings.throughput_batch} test samples") and "static widths" in throughput
    data_only = load_checkpoint(out / "data-only" / "model.pt")
    assert data_only.config["copruning"]["model_mask"] is False
    assert 0 < first.table.loc["co-pruned, data mask only", "MAC fraction"] <= 1.05
    data_written = (out / "data-only" / "model.pt").stat().st_mtime_ns
    saved = out / "static.pt"
    written = saved.stat().st_mtime_ns
    second = run_copruning_stage(settings, dense, out)
    assert saved.stat().st_mtime_ns == written  # reloaded, not fine-tuned again
    assert (out / "data-only" / "model.pt").stat().st_mtime_ns == data_written
    assert second.table.loc["co-pruned, data mask only"].equals(first.table.loc["co-pruned, data mask only"])
    assert second.table.loc["static widths"].equals(first.table.loc["static widths"])
    cache = out / "eval.json"
    older = json.loads(cache.read_text())  # as a version without per-sample errors or the static row cached it
    for name in ("dense", "copruned"):
        del older[name]["mses"]
    del older["static"]
    cache.write_text(json.dumps(older))
    third = run_copruning_stage(settings, dense, out)
    assert third.table.loc["static widths", "MSE"] == pytest.approx(first.table.loc["static widths", "MSE"])
    assert third.table.loc["co-pruned", "MSE"] == pytest.approx(first.table.loc["co-pruned", "MSE"])
    (out / "model.pt").unlink()  # a new co-pruned model gets a new static twin
    run_copruning_stage(settings, dense, out)
    assert saved.stat().st_mtime_ns != written
