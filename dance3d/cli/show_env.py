"""``dance3d show-env``: torch/CUDA versions, devices, which energy meters work (and why not), and the
measurement conditions (power mode, clocks, governors, sensor averaging)."""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_command, add_format_arg, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "show-env", __doc__)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from profiling import collect_env

    env = collect_env()
    if args.format == "json":
        print_json(env)
        return 0
    for key, value in env.items():
        if isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, dict):
            print(f"{key}:")
            for name, item in value.items():
                print(f"  {name}: {item}")
        else:
            print(f"{key}: {value}")
    return 0
