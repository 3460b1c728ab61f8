"""``dance3d quickstart``: the whole pipeline on embedded defaults, leaving a report with figures."""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_command, add_config_args, add_threads_arg, check_out_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "quickstart", __doc__)
    parser.add_argument("--out", default="runs/quick", help="output directory (default: runs/quick)")
    add_threads_arg(parser)
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.config import load_config, to_dict
    from dance3d.quickstart import QuickstartConfig, run_quickstart

    check_out_dir(args.out)
    config = load_config(QuickstartConfig, base=to_dict(QuickstartConfig()), path=args.config, overrides=args.overrides)
    report = run_quickstart(config, args.out)
    print(f"report: {report}")
    return 0
