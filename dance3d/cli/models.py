"""``dance3d models``: list the model zoo."""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_command, add_format_arg, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "models", __doc__)
    parser.add_argument("--family", choices=("builtin", "torchvision", "pytorchvideo"), help="list only this family")
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.models import list_models, model_info

    names = list_models(args.family)
    if args.format == "json":
        rows = [(name, model_info(name)) for name in names]
        print_json([{"name": n, "family": i.family, "default_clip": list(i.default_clip),
                     "description": i.description} for n, i in rows])  # fmt: skip
        return 0
    for name in names:
        info = model_info(name)
        frames, height, width = info.default_clip
        print(f"{name:<16} {info.family:<13} {frames}x{height}x{width:<5} {info.description}")
    return 0
