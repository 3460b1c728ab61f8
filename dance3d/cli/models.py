"""``dance3d models``: list the model zoo."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the model zoo", description=__doc__)
    parser.add_argument("--family", choices=("builtin", "torchvision", "pytorchvideo"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.models import list_models, model_info

    for name in list_models(args.family):
        info = model_info(name)
        frames, height, width = info.default_clip
        print(f"{name:<16} {info.family:<13} {frames}x{height}x{width:<5} {info.description}")
    return 0
