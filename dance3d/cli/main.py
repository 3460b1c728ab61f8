"""Entry point of the ``dance3d`` console script and ``python -m dance3d``.

Each subcommand lives in its own module under ``dance3d.cli`` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func=run`` on it.
Subcommand modules are imported lazily so ``dance3d --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dance3d import __version__
from dance3d.errors import Dance3dError

# (module under dance3d.cli, command name, one-line help) in the order --help lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("quickstart", "quickstart", "run the whole pipeline on embedded defaults and write a report"),
    ("train", "train", "train a dense model"),
    ("evaluate", "eval", "evaluate a checkpoint on a dataset"),
    ("ava", "ava", "DANCE stage 1: fine-tune a dense model to amplify activation variability"),
    ("aap", "aap", "DANCE stage 2: train the per-clip pruning controller (dynamic model)"),
    ("budget", "budget", "re-target a dynamic checkpoint to a mean MAC fraction (no training)"),
    ("cost_table", "cost-table", "DANCE: per gated block and keep level latency (joules) table on this device"),
    ("latency_table", "latency-table", "MDP: per-layer latency table over widths on this device"),
    ("mdp", "mdp", "MDP: latency-constrained channel + block pruning (MILP), then fine-tune"),
    ("stack", "stack", "MDP at a latency target, then DANCE with the device objective on the smaller model"),
    ("models", "models", "list the model zoo"),
    ("show_env", "show-env", "versions, devices and which energy meters work"),
    ("profile", "profile", "MACs, bytes, latency and energy per clip"),
    ("sweep", "sweep", "energy/latency sweep to a CSV/Parquet table"),
    ("rail_energy", "rail-energy", "energy of a run from a Jetson rail log (rail_logger.py on old JetPacks)"),
    ("study", "study", "Optuna search of pruning knobs: accuracy vs energy/latency/MACs, Pareto plots"),
    ("copruning", "copruning", "co-prune a forecaster: per-sample data (tile) and model (channel) masks from one map"),
    ("fallback_table", "fallback-table", "co-pruned SimVP: kept-tile count above which compact runs the whole map"),
)


def command_help(command: str) -> str:
    """The one-line help of ``command`` (the single place it is written)."""
    return next(text for _, name, text in COMMANDS if name == command)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dance3d",
        description="Input-adaptive pruning of 3D CNNs for video, with profiling and trade-off studies.",
    )
    parser.add_argument("--version", action="version", version=f"dance3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    known = {command for _, command, _ in COMMANDS}
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for module_name, command, help_text in COMMANDS:
        if wanted not in known or wanted == command:
            module = importlib.import_module(f"dance3d.cli.{module_name}")
            module.register(subparsers)
        else:
            subparsers.add_parser(command, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse has already printed
        return stop.code if isinstance(stop.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        _apply_common(args)
        return int(args.func(args) or 0)
    except Dance3dError as exc:
        print(f"dance3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dance3d {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dance3d {args.command}: interrupted; finished work is saved, re-run to resume", file=sys.stderr)
        return 130


def _apply_common(args: argparse.Namespace) -> None:
    """Options shared by many verbs: ``--threads`` and ``--device`` (``auto`` resolved, CUDA checked)."""
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "device", None):
        from dance3d.training.trainer import resolve_device

        args.device = str(resolve_device(args.device))
