"""Shared CLI pieces: config/override flags, data flags and output formatting."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dance3d.data.registry import DataConfig


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


def data_for_checkpoint(trained_on: DataConfig, args: argparse.Namespace) -> DataConfig:
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
    return from_dict(DataConfig, merge(to_dict(data), nested["data"]), prefix="data.")


def add_format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def print_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")


def print_table(rows: list[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {text}")
