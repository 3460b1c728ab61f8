"""``dance3d sweep``: measure checkpoints x batch sizes x execution modes into a tidy CSV/Parquet table.

Interrupted sweeps resume: rows already in --out are not measured again.
"""

from __future__ import annotations

import argparse

import torch

from dance3d.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="energy/latency sweep to CSV or Parquet", description=__doc__)
    parser.add_argument("--checkpoint", action="append", required=True, help="model.pt (repeatable)")
    parser.add_argument("--data", help="clips to feed (default: each checkpoint's training data)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,8")
    parser.add_argument("--modes", default="default", help="execution modes, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="measurements per grid point")
    parser.add_argument("--latency-repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-energy", action="store_true")
    parser.add_argument("--out", required=True, help="table path ending in .csv or .parquet")
    parser.set_defaults(func=run)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"--batch-sizes must be positive integers like 1,8; got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from dance3d.cli.common import data_for_checkpoint
    from dance3d.data.registry import build_dataset
    from dance3d.loading import load_model
    from profiling import run_sweep

    batch_sizes = _int_list(args.batch_sizes)
    first = load_model(args.checkpoint[0])
    dataset = build_dataset(data_for_checkpoint(first.data, args), args.split, classes=first.classes)
    if len(dataset) < max(batch_sizes):
        raise ConfigError(f"the {args.split} split has {len(dataset)} clips, fewer than batch size {max(batch_sizes)}")
    clips = torch.stack([dataset[i]["clip"] for i in range(max(batch_sizes))])
    variants = {path: (lambda p=path: load_model(p).model) for path in args.checkpoint}
    table = run_sweep(
        variants,
        lambda batch_size: clips[:batch_size],
        args.out,
        batch_sizes=batch_sizes,
        modes=[m for m in args.modes.split(",") if m],
        repeats=args.repeats,
        device=args.device,
        latency_repeats=args.latency_repeats,
        meter=None if args.no_energy else "auto",
    )
    print(table.to_string(max_rows=30, max_cols=12))
    print(f"wrote {len(table)} rows to {args.out}")
    return 0
