"""CLI consistency and user mistakes: every option has help, numeric options are checked, one line per error."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from dance3d.cli import common
from dance3d.cli.main import COMMANDS, build_parser, main

VERBS = [command for _, command, _ in COMMANDS]


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every verb's (and study action's) parser, fully registered."""
    out = {}
    for verb in VERBS:
        parser = build_parser([verb])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out[verb] = sub.choices[verb]
        for action in out[verb]._actions:
            if isinstance(action, argparse._SubParsersAction):
                out.update({f"{verb} {name}": p for name, p in action.choices.items()})
    return out


PARSERS = _verb_parsers()


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help(name):
    missing = [a.option_strings[0] for a in _options(PARSERS[name]) if not a.help]
    assert not missing, f"dance3d {name}: options without help: {missing}"


def test_each_verb_has_one_help_text():
    parser = build_parser(VERBS)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {action.dest: action.help for action in sub._choices_actions}
    for verb in VERBS:
        assert PARSERS[verb].description.split("\n")[0] == listed[verb], verb


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_numeric_options_use_checking_types(name):
    raw = [a.option_strings[0] for a in _options(PARSERS[name]) if a.type in (int, float)]
    assert not raw, f"dance3d {name}: numeric options parsed without a range check: {raw}"


def test_shared_options_have_one_name_and_default():
    seen: dict[str, set] = {}
    for parser in PARSERS.values():
        for action in _options(parser):
            if action.dest in ("device", "threads", "repeats", "energy", "format"):
                seen.setdefault(action.dest, set()).add((tuple(action.option_strings), action.type))
    for dest, forms in seen.items():
        assert len(forms) == 1, f"--{dest} has several forms: {forms}"
    assert not any("--latency-repeats" in a.option_strings for p in PARSERS.values() for a in _options(p))
    assert not any("--no-energy" == a.option_strings[0] for p in PARSERS.values() for a in _options(p))
    runs_model = ("train", "eval", "ava", "aap", "budget", "latency-table", "mdp", "profile", "sweep", "study run")
    for verb in runs_model:
        assert any(a.dest == "threads" for a in _options(PARSERS[verb])), f"{verb} lacks --threads"
    prints_result = ("train", "eval", "budget", "models", "show-env", "profile", "sweep", "latency-table",
                     "study status", "study deploy")  # fmt: skip
    for verb in prints_result:
        assert any(a.dest == "format" for a in _options(PARSERS[verb])), f"{verb} lacks --format"


def _numeric_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, parser in sorted(PARSERS.items()):
        for action in _options(parser):
            if action.type in common.NUMBER_TYPES:
                cases.append((name, action.option_strings[0], "-1"))
                if action.type in (common.positive_int, common.positive_float, common.fraction):
                    cases.append((name, action.option_strings[0], "0"))
    return cases


NUMERIC_CASES = _numeric_cases()


def test_the_walk_finds_the_numeric_options():
    options = {(name, option) for name, option, _ in NUMERIC_CASES}
    assert {("eval", "--batch-size"), ("eval", "--workers"), ("profile", "--repeats"), ("sweep", "--runs")} <= options
    assert len(options) > 30


@pytest.mark.parametrize(("verb", "option", "value"), NUMERIC_CASES)
def test_zero_and_negative_numbers_exit_2_with_one_line(verb, option, value, capsys):
    assert main([*verb.split(), option, value]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {option}" in err


@pytest.mark.parametrize("device", ["gpu", "cpu:abc", "cuda:x"])
def test_bad_device_names_are_refused(device, capsys):
    assert main(["eval", "--checkpoint", "x.pt", "--device", device]) == 2
    assert "argument --device: expected auto, cpu, cuda" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.checkpoint_every_steps=0", "train.checkpoint_every_steps must be >= 1, got 0"),
        ("train.label_smoothing=2", "train.label_smoothing must be >= 0 and < 1, got 2.0"),
        ("train.threads=-1", "train.threads must be >= 0, got -1"),
        ("train.weight_decay=-0.1", "train.weight_decay must be >= 0, got -0.1"),
        ("train.warmup_steps=-1", "train.warmup_steps must be >= 0, got -1"),
        ("train.device=gpu", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ],
)
def test_bad_train_settings_are_one_line_naming_the_field(override, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_or_unwritable_is_refused_before_work(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    assert main(["train", "--out", str(a_file)]) == 2
    assert "is a file; give a directory" in capsys.readouterr().err
    assert main(["train", "--out", str(a_file / "run")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        if not __import__("os").access(locked, __import__("os").W_OK):  # root can write anywhere
            assert main(["train", "--out", str(locked / "run")]) == 2
            assert "is not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_sweep_out_suffix_is_checked_before_loading(tmp_path, capsys):
    assert main(["sweep", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert "must end in .csv or .parquet" in err  # not 'checkpoint not found': nothing was loaded


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        ("tiny-test", "4x8x32x32", "the model cannot take --clip-shape 4x8x32x32"),
        ("s3d", "3x1x16x16", "the model cannot take --clip-shape 3x1x16x16"),  # too few frames
        ("tiny-test", "3x4096x4096x4096", "needs 768.0 GiB; the limit is 2 GiB"),
    ],
)
def test_clip_shapes_the_model_cannot_take_are_one_line(model, shape, message, capsys):
    code = main(["profile", "--model", model, "--num-classes", "4", "--clip-shape", shape, "--no-energy"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_json_output_has_null_not_nan(capsys):
    common.print_json({"top1": math.nan, "per_class": {"a": math.inf, "b": 0.5}})
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"top1": None, "per_class": {"a": None, "b": 0.5}}


def test_exponent_numbers_without_a_dot_are_numbers():
    from dance3d.config import load_config
    from dance3d.training.trainer import RunConfig

    assert load_config(RunConfig, overrides=["train.lr=1e-3"]).train.lr == pytest.approx(0.001)
