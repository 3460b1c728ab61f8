"""``dance3d sweep``: measure checkpoints x batch sizes x execution modes into a tidy CSV/Parquet table.

Each row runs in its own execution mode (``default``: the checkpoint's own; ``simulate`` or
``compact``: dynamic and co-pruned checkpoints only). Classifiers are fed clips of their data,
forecasters input frames of theirs; one sweep takes one of the two. Interrupted sweeps resume: rows
already in --out are not measured again.
"""

from __future__ import annotations

import argparse

import torch

from dance3d.cli.common import (
    add_command,
    add_device_arg,
    add_energy_arg,
    add_format_arg,
    add_repeats_arg,
    add_threads_arg,
    check_out_file,
    positive_int,
    print_json,
)
from dance3d.errors import ConfigError

SWEEP_MODES = ("default", "simulate", "compact")
"""``default``: as the checkpoint runs; the others set a dynamic or co-pruned checkpoint's execution mode."""
MODE_KINDS = ("dynamic", "copruned")
"""Checkpoint kinds with execution modes."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "sweep", __doc__)
    parser.add_argument("--checkpoint", action="append", required=True, help="model.pt (repeatable)")
    parser.add_argument("--data", help="clips to feed (default: each checkpoint's training data)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="clips from this split")
    parser.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,8")
    parser.add_argument(
        "--modes", default="default", help=f"execution modes, comma-separated: {', '.join(SWEEP_MODES)}"
    )
    parser.add_argument("--runs", type=positive_int, default=1, help="measurements (rows) per grid point")
    add_repeats_arg(parser, default=20)
    add_device_arg(parser)
    add_threads_arg(parser)
    add_energy_arg(parser)
    add_format_arg(parser)
    parser.add_argument("--out", required=True, help="table path ending in .csv or .parquet (resumed if it exists)")
    parser.set_defaults(func=run)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"--batch-sizes must be positive integers like 1,8; got {text!r}")
    return values


def parse_modes(text: str, kinds: dict[str, str]) -> list[str]:
    """``--modes`` checked against ``SWEEP_MODES`` and against each checkpoint's kind (path -> kind)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in SWEEP_MODES]
    if not modes or unknown:
        raise ConfigError(f"--modes takes {', '.join(SWEEP_MODES)}; got {text!r}")
    static = [path for path, kind in kinds.items() if kind not in MODE_KINDS]
    if static and set(modes) - {"default"}:
        raise ConfigError(f"{static[0]} is a {kinds[static[0]]!r} checkpoint: it runs in --modes default only")
    return modes


def prepare_mode(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """The model in sweep mode ``mode`` (eval mode; a dynamic or co-pruned model's execution mode set unless
    ``default``)."""
    if mode != "default":
        from dance3d.copruning import CoprunedForecaster
        from dance3d.dynamic import set_execution_mode

        if isinstance(model, CoprunedForecaster):
            model.set_mode(mode)
        else:
            set_execution_mode(model, mode)
    return model.eval()


def run(args: argparse.Namespace) -> int:
    from dance3d.checkpoint import load_checkpoint
    from dance3d.cli.profiling_inputs import FORECAST_KINDS, checkpoint_inputs
    from dance3d.loading import load_model
    from profiling import run_sweep

    check_out_file(args.out, force=True, suffixes=(".csv", ".parquet"))
    batch_sizes = _int_list(args.batch_sizes)
    kinds = {p: load_checkpoint(p).get("kind", "dense") for p in args.checkpoint}
    modes = parse_modes(args.modes, kinds)
    if len({kind in FORECAST_KINDS for kind in kinds.values()}) > 1:
        raise ConfigError("sweep forecasters and video classifiers separately: they read different inputs")
    first = load_model(args.checkpoint[0])
    clips = checkpoint_inputs(first, args, split=args.split, count=max(batch_sizes))
    if len(clips) < max(batch_sizes):
        raise ConfigError(f"the {args.split} split has {len(clips)} clips, fewer than batch size {max(batch_sizes)}")
    variants = {path: (lambda p=path: load_model(p).model) for path in args.checkpoint}
    table = run_sweep(
        variants,
        lambda batch_size: clips[:batch_size],
        args.out,
        batch_sizes=batch_sizes,
        modes=modes,
        prepare=prepare_mode,
        repeats=args.runs,
        device=args.device,
        latency_repeats=args.repeats,
        meter="auto" if args.energy else None,
    )
    if args.format == "json":
        print_json({"out": str(args.out), "rows": table.to_dict(orient="records")})
        return 0
    print(table.to_string(max_rows=30, max_cols=12))
    print(f"wrote {len(table)} rows to {args.out}")
    return 0
