"""Shared CLI pieces: one definition of each option used by several verbs, and output formatting.

Every numeric option is parsed by a checking type (``positive_int``, ``non_negative_int`` ...), so a
bad value is refused by argparse with one line naming the option. Options with one meaning keep one
name and one default on every verb: ``--device`` (default ``auto``), ``--threads``, ``--repeats``
(timed latency repeats), ``--energy/--no-energy``, ``--format``, ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from dance3d.errors import ConfigError


def add_command(subparsers: argparse._SubParsersAction, name: str, doc: str | None = None, **kwargs: Any):
    """A verb's parser: its one-line help from the command table, ``doc``'s later paragraphs as details."""
    from dance3d.cli.main import command_help

    summary = command_help(name)
    details = (doc or "").strip().split("\n\n", 1)[1:]
    description = summary + ("\n\n" + details[0] if details else "")
    return subparsers.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )


def _number(kind: type, text: str, *, low: float, low_inclusive: bool, high: float | None = None):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if value != value or (value < low if low_inclusive else value <= low) or (high is not None and value > high):
        if high is not None:
            opening = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"must be in {opening}{low:g}, {high:g}], got {text}")
        raise argparse.ArgumentTypeError(f"must be {'>=' if low_inclusive else '>'} {low:g}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(int, text, low=1, low_inclusive=True)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, low=0, low_inclusive=True)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    return _number(float, text, low=0.0, low_inclusive=False)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    return _number(float, text, low=0.0, low_inclusive=True)


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    return _number(float, text, low=0.0, low_inclusive=False, high=1.0)


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(float, text, low=0.0, low_inclusive=True, high=1.0)


NUMBER_TYPES = (positive_int, non_negative_int, positive_float, non_negative_float, fraction, unit_interval)
"""The checking types every numeric option uses (a test walks the parser for them)."""


def device_name(text: str) -> str:
    """argparse type: ``auto`` or a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    if text == "auto":
        return text
    import torch

    try:
        torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}") from None
    return text


def add_device_arg(parser: argparse.ArgumentParser, *, default: str | None = "auto") -> None:
    where = "default: auto, a CUDA GPU when there is one" if default else "default: the config's"
    parser.add_argument("--device", type=device_name, default=default, help=f"auto, cpu, cuda, cuda:1 ... ({where})")


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=non_negative_int, default=0, help="CPU threads for torch (0: torch's default)"
    )


def add_repeats_arg(parser: argparse.ArgumentParser, *, default: int) -> None:
    parser.add_argument(
        "--repeats", type=positive_int, default=default, help=f"timed latency repeats (default: {default})"
    )


def add_energy_arg(parser: argparse.ArgumentParser, *, default: bool | None = True) -> None:
    when = {True: "on", False: "off", None: "only when an objective or constraint needs it"}[default]
    parser.add_argument(
        "--energy",
        action=argparse.BooleanOptionalAction,
        default=default,
        help=f"measure energy where a meter works (default: {when})",
    )


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML or TOML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=0.01 (repeatable)",
    )


def add_data_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--data",
        required=required,
        metavar="SOURCE",
        help="'moving-digits' or a class-per-folder video directory",
    )
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable videos with a warning")


def data_overrides(args: argparse.Namespace) -> list[str]:
    """Turn ``--data``/``--skip-bad`` into config overrides."""
    out = []
    if getattr(args, "data", None):
        out.append(f"data.source={json.dumps(args.data)}")
    if getattr(args, "skip_bad", False):
        out.append("data.skip_bad=true")
    return out


def data_for_checkpoint(trained_on: Any, args: argparse.Namespace) -> Any:
    """The checkpoint's data settings, with the source, skip flag and ``--set data.*`` the user asked for."""
    from dataclasses import replace

    source = args.data or trained_on.source
    data = replace(trained_on, source=source, skip_bad=bool(getattr(args, "skip_bad", False)))
    overrides = getattr(args, "overrides", None)
    if not overrides:
        return data
    from dance3d.config import from_dict, merge, parse_overrides, to_dict
    from dance3d.errors import ConfigError

    nested = parse_overrides(overrides)
    if set(nested) - {"data"}:
        raise ConfigError(f"--set here takes data.* keys only, got {', '.join(sorted(set(nested) - {'data'}))}")
    from dance3d.data.registry import DataConfig

    return from_dict(DataConfig, merge(to_dict(data), nested["data"]), prefix="data.")


def add_format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (json: strict, NaN as null)"
    )


def print_json(payload: Any) -> None:
    """Strict JSON on stdout: NaN and infinities become ``null``."""
    from dance3d.benchmark_results import dumps_strict

    sys.stdout.write(dumps_strict(payload) + "\n")


def print_table(rows: list[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {text}")


def _writable_parent(path: Path, flag: str) -> None:
    parent = path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable")


def check_out_file(path: str | Path, *, force: bool, flag: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any work, an output file that cannot be written or exists (without ``force``)."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file path")
    if path.exists() and not force:
        raise ConfigError(f"{flag} {path} exists; pass --force to overwrite it, or write another file")
    _writable_parent(path, flag)
    return path


def check_out_dir(path: str | Path, *, flag: str = "--out") -> Path:
    """Refuse, before any work, an output directory that is a file or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {path} is not writable")
        return path
    _writable_parent(path / "x", flag)
    return path
