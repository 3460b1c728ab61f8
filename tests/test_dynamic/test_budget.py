"""Budget re-targeting: the largest uniform logit offset within a MAC target, saved and reloaded; clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from dynamic_helpers import CLIP, dynamic_tiny_test

from dance3d.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dance3d.cli.main import main
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.dynamic import apply_knobs, current_knobs, knob_space
from dance3d.dynamic.budget import fit_budget, mean_mac_fraction
from dance3d.dynamic.checkpoint import KIND, dynamic_spec
from dance3d.errors import ConfigError
from dance3d.loading import load_model

DATA = DataConfig(num_frames=8, height=32, width=32, num_train=16, num_val=12, num_test=12)
SPEC = {"name": "tiny-test", "num_classes": 8, "options": {}}


def _clips(count: int = 8) -> torch.Tensor:
    return torch.rand(count, 3, *CLIP, generator=torch.Generator().manual_seed(1))


def _fraction_at(model, clips, offset: float, base: dict[str, float] | None = None) -> float:
    base = base or {}
    apply_knobs(model, {k.name: base.get(k.name, 0.0) + offset for k in knob_space(model)})
    return mean_mac_fraction(model, clips)


@pytest.mark.parametrize("target", [0.45, 0.7])
def test_fit_is_the_largest_offset_within_the_target(target):
    model, clips = dynamic_tiny_test(), _clips()
    fit = fit_budget(model, clips, target, tolerance=1e-3)
    assert fit.mac_fraction <= target
    assert mean_mac_fraction(model, clips) == pytest.approx(fit.mac_fraction)  # the model is left at the fit
    assert fit.knobs == pytest.approx({k.name: fit.offset for k in knob_space(model)})
    assert _fraction_at(model, clips, fit.offset + 2e-3) > target  # a little more would overspend
    assert fit.evaluations < 25


def test_fit_shifts_from_the_models_own_knobs_and_only_the_named_ones():
    model, clips = dynamic_tiny_test(), _clips()
    names = [k.name for k in knob_space(model)]
    base = {names[0]: -1.0}
    apply_knobs(model, base)
    fit = fit_budget(model, clips, 0.6, knobs=(names[0], names[1]))
    assert set(fit.knobs) <= {names[0], names[1]}
    assert fit.knobs[names[0]] == pytest.approx(-1.0 + fit.offset)
    assert current_knobs(model)[names[2]] == 0.0
    assert fit.mac_fraction <= 0.6


def test_unreachable_or_bad_targets_are_clear_and_leave_the_model_as_it_was():
    model, clips = dynamic_tiny_test(), _clips(4)
    lowest = _fraction_at(model, clips, -32.0)
    apply_knobs(model, {knob_space(model)[0].name: 0.5})
    before = current_knobs(model)
    with pytest.raises(ConfigError, match=f"below what this model reaches.*{lowest:.4f}"):
        fit_budget(model, clips, lowest / 2)
    assert current_knobs(model) == before
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="must be in \\(0, 1\\]"):
            fit_budget(model, clips, bad)
    with pytest.raises(ConfigError, match="unknown knob"):
        fit_budget(model, clips, 0.5, knobs=("stage9.frames_offset",))
    apply_knobs(model, {k.name: -20.0 for k in knob_space(model)})  # every gate at its lowest level
    assert fit_budget(model, clips, lowest, span=0.01).offset == 0.01  # the top of the span still fits


@pytest.fixture
def checkpoint(tmp_path):
    model = dynamic_tiny_test()
    spec = dynamic_spec(model, SPEC, backbone_kind="dense")
    checkpoint = Checkpoint.create(
        KIND, spec, model.state_dict(), data=DATA, classes=MOTION_CLASSES,
        study_trial={"number": 3},  # as if deployed from a study: a record the re-targeted model drops
    )  # fmt: skip
    return save_checkpoint(checkpoint, tmp_path / "aap.pt")


def test_cli_writes_a_checkpoint_that_runs_at_the_fitted_budget(checkpoint, tmp_path, capsys):
    out = tmp_path / "budget" / "model.pt"
    args = ["budget", "--checkpoint", str(checkpoint), "--target-mac-fraction", "0.5", "--out", str(out)]
    assert main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mac_fraction"] <= 0.5 < report["mac_fraction_before"] and report["num_clips"] == 12
    loaded = load_model(out)
    assert current_knobs(loaded.model) == pytest.approx(report["knobs"])
    written = load_checkpoint(out)
    assert written["budget"]["target_mac_fraction"] == 0.5 and "study_trial" not in written
    dataset = build_dataset(DATA, "val", classes=loaded.classes)
    clips = torch.stack([dataset[i]["clip"] for i in range(len(dataset))])
    assert mean_mac_fraction(loaded.model, clips) == pytest.approx(report["mac_fraction"])


def test_cli_errors_are_one_clear_line(checkpoint, tmp_path, trained_tiny, capsys):
    def error(*extra: str) -> str:
        assert main(["budget", "--out", str(tmp_path / "x.pt"), *extra]) == 2
        return capsys.readouterr().err

    assert "must be in (0, 1]" in error("--checkpoint", str(checkpoint), "--target-mac-fraction", "30")
    assert "budget needs a dynamic one" in error("--checkpoint", trained_tiny, "--target-mac-fraction", "0.5")
    assert main(["budget", "--checkpoint", str(checkpoint), "--target-mac-fraction", "0.5", "--out", str(checkpoint)])
    assert "another file" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
