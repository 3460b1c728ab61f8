"""The DANCE pipeline: one set of defaults, presets that reproduce the quickstart's and the benchmark's settings."""

from dataclasses import asdict

import pytest
import yaml

from dance3d.cli.main import main
from dance3d.config import to_dict
from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.dance.experiment import EXPERIMENTS
from dance3d.dance.pipeline import PRESETS, DanceRunConfig, DanceSettings, load_run_config, preset, run_dance
from dance3d.dynamic import DynamicConfig
from dance3d.dynamic.checkpoint import saved_dynamic_config
from dance3d.errors import CheckpointError, ConfigError
from dance3d.quickstart import QuickstartConfig

TRAINING = ("epochs", "batch_size", "lr", "joint_epochs", "joint_lr", "target_mac_fraction", "mac_penalty")


def fields(settings, names) -> dict:
    return {name: getattr(settings, name) for name in names}


def test_the_defaults_are_the_benchmarks_reported_setting():
    dance = preset("default")
    experiment = EXPERIMENTS["default"]
    assert dance == DanceSettings() and (experiment.ava, experiment.aap, experiment.dynamic) == (
        dance.ava,
        dance.aap,
        dance.dynamic,
    )
    ava = {"epochs": 2, "batch_size": 16, "lr": 5e-4, "variability_weight": 0.5, "cv_cap": 2.0, "weight_decay": 0.0}
    assert fields(dance.ava, ava) == ava
    aap = {"epochs": 2, "batch_size": 16, "lr": 1e-2, "joint_epochs": 3, "joint_lr": 5e-4}
    aap |= {"target_mac_fraction": 0.30, "mac_penalty": 4.0, "distill_weight": 1.0, "distill_temperature": 2.0}
    assert fields(dance.aap, aap) == aap
    assert dance.dynamic == DynamicConfig()
    comparison = EXPERIMENTS["default"].comparison
    assert (comparison.train_clips, comparison.val_clips, comparison.test_clips) == (960, 200, 800)
    assert comparison.curve_targets == (0.2, 0.45) and comparison.static_targets == ("dance", "dance_target_0.2")
    assert (comparison.static_lr, comparison.static_frame_keep) == (5e-4, 0.5)


def test_the_quickstart_preset_is_the_quickstarts_setting():
    quick = PRESETS["quickstart"]
    assert fields(quick.ava, ("epochs", "batch_size", "lr", "measure_clips")) == {
        "epochs": 1,
        "batch_size": 16,
        "lr": 5e-4,
        "measure_clips": 128,
    }
    assert fields(quick.aap, (*TRAINING, "measure_clips")) == {
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-2,
        "joint_epochs": 6,
        "joint_lr": 5e-4,
        "target_mac_fraction": 0.40,
        "mac_penalty": 4.0,
        "measure_clips": 128,
    }
    config = QuickstartConfig()
    assert (config.ava, config.aap) == (quick.ava, quick.aap)


def test_the_smoke_preset_is_the_benchmarks_quick_setting():
    smoke = EXPERIMENTS["smoke"]
    assert (smoke.ava, smoke.aap, smoke.dynamic) == (PRESETS["smoke"].ava, PRESETS["smoke"].aap, DynamicConfig())
    assert fields(smoke.ava, ("epochs", "batch_size", "lr")) == {"epochs": 1, "batch_size": 16, "lr": 5e-4}
    assert fields(smoke.aap, TRAINING) == {
        "epochs": 1,
        "batch_size": 16,
        "lr": 1e-2,
        "joint_epochs": 1,
        "joint_lr": 1e-4,
        "target_mac_fraction": 0.35,
        "mac_penalty": 4.0,
    }
    comparison = smoke.comparison
    assert (comparison.train_clips, comparison.val_clips, comparison.test_clips) == (48, 32, 64)
    assert comparison.curve_targets == (0.5,) and comparison.static_targets == ("dance",)


def test_run_config_layers_preset_data_and_overrides(tiny_run_config):
    data = tiny_run_config.data
    config = load_run_config(preset_name="quickstart", data=to_dict(data), overrides=["aap.epochs=5"])
    assert config.data == data
    assert (config.aap.epochs, config.aap.joint_epochs, config.ava.epochs) == (5, 6, 1)
    with pytest.raises(ConfigError, match="unknown DANCE preset 'fast'; known: default, quickstart, smoke"):
        load_run_config(preset_name="fast", data=to_dict(data), overrides=[])


@pytest.mark.parametrize("removed", ["aap.settle_epochs=1", "aap.channel_logit_penalty=0.1"])
def test_removed_aap_options_are_unknown_keys(removed, tiny_run_config):
    with pytest.raises(ConfigError, match="unknown config key"):
        load_run_config(data=to_dict(tiny_run_config.data), overrides=[removed])


def test_checkpoints_that_saved_a_removed_controller_option_load_only_at_its_neutral_value():
    saved = asdict(DynamicConfig(channel_multiple=4)) | {"channel_bias_spread": 0.0, "channel_context_shift": False}
    assert saved_dynamic_config(saved) == DynamicConfig(channel_multiple=4)
    with pytest.raises(CheckpointError, match="channel_context_shift"):
        saved_dynamic_config(saved | {"channel_context_shift": True})


def test_cli_preset_sets_both_stages_and_bad_presets_exit_2(trained_tiny, tmp_path, capsys):
    out = tmp_path / "ava"
    args = ["ava", "--checkpoint", trained_tiny, "--out", str(out), "--set", "ava.progress=false"]
    small = ["--set", "ava.batch_size=8", "--set", "ava.num_train_clips=16", "--set", "ava.measure_clips=8"]
    assert main([*args, "--preset", "smoke", *small]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["ava"]["epochs"] == 1 and saved["aap"]["target_mac_fraction"] == 0.35
    capsys.readouterr()
    assert main(["aap", "--checkpoint", trained_tiny, "--out", str(tmp_path / "aap"), "--preset", "fast"]) == 2
    err = capsys.readouterr().err
    assert "unknown DANCE preset 'fast'" in err and "Traceback" not in err


def test_run_dance_runs_both_stages_evaluates_and_resumes(trained_tiny, tiny_run_config, tmp_path):
    config = DanceRunConfig(
        data=tiny_run_config.data,
        ava=AvaSettings(epochs=1, batch_size=8, num_train_clips=16, measure_clips=8, progress=False),
        aap=AapSettings(epochs=1, joint_epochs=0, batch_size=8, num_train_clips=16, measure_clips=8, progress=False),
        dynamic=DynamicConfig(channel_multiple=4),
    )
    run = run_dance(config, trained_tiny, tmp_path)
    assert run.ava_checkpoint == tmp_path / "ava" / "model.pt" and run.aap_checkpoint.is_file()
    assert run.test["num_clips"] == tiny_run_config.data.num_test
    assert all(0 < r["mac_fraction"] <= 1.05 for r in run.test["records"])
    stamps = [p.stat().st_mtime_ns for p in (run.ava_checkpoint, run.aap_checkpoint)]
    again = run_dance(config, trained_tiny, tmp_path)  # every stage finished: reused, not rerun
    assert [p.stat().st_mtime_ns for p in (again.ava_checkpoint, again.aap_checkpoint)] == stamps
    assert again.test == run.test
