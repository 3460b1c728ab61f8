"""``study deploy``: a trial's knobs written into a checkpoint reproduce the trial; saved knobs load; clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
from optuna.trial import TrialState
from study_helpers import DATA, fast_config

from dance3d.checkpoint import load_checkpoint, save_checkpoint
from dance3d.cli.main import main
from dance3d.data.registry import build_dataset
from dance3d.dynamic import current_knobs
from dance3d.errors import CheckpointError, ConfigError
from dance3d.evaluation import evaluate
from dance3d.loading import load_model
from studies import run_study
from studies.deploy import deploy_trial, pick_trial

CLIPS = 8


@pytest.fixture(scope="module")
def study_run(dynamic_checkpoint, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'study.db'}"
    config = fast_config(trials=4, seed=3, constraints=("mac_fraction<=0.8",))
    return url, run_study(config, checkpoint=dynamic_checkpoint, storage=url, limit=CLIPS, progress=False).study


def _evaluate(path):
    loaded = load_model(path)
    dataset = build_dataset(DATA, "val", classes=loaded.classes)
    result = evaluate(loaded.model, dataset, classes=loaded.classes, limit=CLIPS, progress=False)
    return result.top1, result.clip_stat_summary["mac_fraction"]["mean"]


def _complete(study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def test_deployed_checkpoint_runs_at_the_trials_operating_point(study_run, dynamic_checkpoint, tmp_path):
    _, study = study_run
    _, base_mac_fraction = _evaluate(dynamic_checkpoint)
    # the trial whose MACs differ most from the trained controller's, so that lost knobs would show
    trial = max(_complete(study), key=lambda t: abs(t.user_attrs["mac_fraction"] - base_mac_fraction))
    assert abs(trial.user_attrs["mac_fraction"] - base_mac_fraction) > 0.01

    deployed = deploy_trial(study, trial.number, tmp_path / "deployed" / "model.pt")

    assert current_knobs(load_model(deployed.path).model) == pytest.approx(trial.user_attrs["knobs"])
    top1, mac_fraction = _evaluate(deployed.path)
    assert top1 == pytest.approx(trial.user_attrs["accuracy"])
    assert mac_fraction == pytest.approx(trial.user_attrs["mac_fraction"], rel=1e-5)
    provenance = load_checkpoint(deployed.path)["study_trial"]
    assert provenance["number"] == trial.number and provenance["source_checkpoint"] == dynamic_checkpoint
    assert provenance["measured"]["mac_fraction"] == trial.user_attrs["mac_fraction"]
    assert provenance["feasible"] == (trial.user_attrs["mac_fraction"] <= 0.8) == deployed.feasible


def test_cli_deploy_then_eval_reports_the_knobs_and_knob_overrides(study_run, tmp_path, capsys):
    url, study = study_run
    trial = _complete(study)[0]
    out = tmp_path / "model.pt"
    assert main(["study", "deploy", "--storage", url, "--trial", str(trial.number), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"trial {trial.number} of study" in printed and f"dance3d eval --checkpoint {out}" in printed
    evaluate_args = ["eval", "--checkpoint", str(out), "--split", "val", "--limit", str(CLIPS), "--format", "json"]
    assert main(evaluate_args) == 0
    report = json.loads(capsys.readouterr().out)
    nonzero = {k: v for k, v in trial.user_attrs["knobs"].items() if v != 0.0}
    assert report["knobs"] == pytest.approx(nonzero) and report["top1"] == pytest.approx(trial.user_attrs["accuracy"])

    assert main([*evaluate_args, "--knob", "stage0.frames_offset=-30"]) == 0  # overrides one, keeps the others
    report = json.loads(capsys.readouterr().out)
    assert report["knobs"] == pytest.approx({**nonzero, "stage0.frames_offset": -30.0})


def test_checkpoint_knobs_load_and_old_checkpoints_have_none(dynamic_checkpoint, tmp_path):
    checkpoint = load_checkpoint(dynamic_checkpoint)
    spec = {k: v for k, v in checkpoint.model.items() if k != "knobs"}  # written before knobs were saved
    save_checkpoint(checkpoint.replace(model=spec), tmp_path / "old.pt")
    assert set(current_knobs(load_model(tmp_path / "old.pt").model).values()) == {0.0}
    save_checkpoint(checkpoint.replace(model={**spec, "knobs": {"stage0.frames_offset": -1.5}}), tmp_path / "knobs.pt")
    assert current_knobs(load_model(tmp_path / "knobs.pt").model)["stage0.frames_offset"] == -1.5
    save_checkpoint(checkpoint.replace(model={**spec, "knobs": {"stage9.frames_offset": 1.0}}), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="knobs do not fit its model.*stage9.frames_offset"):
        load_model(tmp_path / "bad.pt")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() makes the RUNNING trial
def test_deploy_errors_are_clear(study_run, dynamic_checkpoint, dense_checkpoint, tmp_path, capsys):
    url, study = study_run
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    with pytest.raises(ConfigError, match=f"has no trial 99 \\(it holds trials 0..{max(numbers)}\\)"):
        deploy_trial(study, 99, tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="another file"):
        deploy_trial(study, numbers[0], dynamic_checkpoint)
    moved = tmp_path / "moved.pt"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        deploy_trial(study, numbers[0], tmp_path / "a.pt", checkpoint=moved)
    running = study.ask()
    try:
        with pytest.raises(ConfigError, match="is RUNNING, not COMPLETE"):
            deploy_trial(study, running.number, tmp_path / "a.pt")
    finally:
        study.tell(running, state=TrialState.FAIL)
    assert not (tmp_path / "a.pt").exists()
    assert main(["eval", "--checkpoint", dynamic_checkpoint, "--knob", "frames=fast"]) == 2
    assert "--knob must look like NAME=VALUE" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", dynamic_checkpoint, "--knob", "stage7.tiles_offset=1", "--limit", "2"]) == 2
    assert "unknown knob(s) stage7.tiles_offset" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", dense_checkpoint, "--knob", "stage0.frames_offset=1"]) == 2
    assert "--knob apply to dynamic checkpoints" in capsys.readouterr().err


def test_deploy_says_where_the_studys_checkpoint_went(dynamic_checkpoint, tmp_path):
    copy = tmp_path / "aap" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(dynamic_checkpoint, copy)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = run_study(fast_config(trials=1), checkpoint=copy, storage=url, limit=CLIPS, progress=False).study
    copy.unlink()
    with pytest.raises(ConfigError, match="is not here; pass the same model with --checkpoint"):
        deploy_trial(study, 0, tmp_path / "out.pt")
    assert deploy_trial(study, 0, tmp_path / "out.pt", checkpoint=dynamic_checkpoint).path.is_file()


def test_pick_trial_takes_the_cheapest_pareto_trial_within_the_accuracy_drop(study_run, tmp_path, capsys):
    url, study = study_run
    pareto = study.best_trials  # feasible (mac_fraction <= 0.8) and non-dominated
    assert pareto
    cheapest = min(pareto, key=lambda t: t.user_attrs["mac_fraction"])
    assert pick_trial(study, max_accuracy_drop=1.0).number == cheapest.number
    out = tmp_path / "picked.pt"
    assert main(["study", "deploy", "--storage", url, "--max-accuracy-drop", "1", "--out", str(out)]) == 0
    assert f"trial {cheapest.number} of study" in capsys.readouterr().out
    assert main(["study", "deploy", "--storage", url, "--max-accuracy-drop", "5", "--out", str(out)]) == 2
    assert "argument --max-accuracy-drop: must be in [0, 1], got 5" in capsys.readouterr().err

    baselines = study.user_attrs["baselines"]
    best = max(t.user_attrs["accuracy"] for t in pareto)

    def with_dense_accuracy(accuracy: float) -> None:
        study.set_user_attr("baselines", {**baselines, "dense": {**baselines["dense"], "accuracy": accuracy}})

    try:
        with_dense_accuracy(best)  # with no drop allowed, only the most accurate trials qualify
        picked = pick_trial(study, max_accuracy_drop=0.0)
        assert picked.user_attrs["accuracy"] == best
        assert picked.user_attrs["mac_fraction"] == min(
            t.user_attrs["mac_fraction"] for t in pareto if t.user_attrs["accuracy"] == best
        )
        study.set_user_attr("baselines", {})
        with pytest.raises(ConfigError, match="no dense baseline yet"):
            pick_trial(study, max_accuracy_drop=0.5)
        with_dense_accuracy(2.0)
        with pytest.raises(ConfigError, match="no Pareto trial .* within 0.5 .* the most accurate is trial"):
            pick_trial(study, max_accuracy_drop=0.5)
    finally:
        study.set_user_attr("baselines", baselines)
