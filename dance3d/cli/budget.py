"""``dance3d budget``: re-target a dynamic or co-pruned checkpoint to a mean MAC fraction or latency, without training.

    dance3d budget --checkpoint runs/aap/model.pt --target-mac-fraction 0.3 --out runs/aap-0.3/model.pt
    dance3d budget --checkpoint runs/aap/model.pt --target-latency-ms 4 --cost-table cost.json --out ...
    dance3d budget --checkpoint runs/cp/model.pt --target-mac-fraction 0.25 --out runs/cp-0.25/model.pt

Shifts the controller's logits (all run-time knobs, or ``--knobs``) by the largest offset whose mean
MAC fraction (or per-clip latency predicted by a 'dance3d cost-table' table) on validation clips is at
most the target, and writes a checkpoint that runs there. A co-pruned forecaster (from 'dance3d
copruning') moves its thresholds (data_threshold, channel_threshold, or --knobs) by one offset in
logits to a MAC-fraction target.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_data_args,
    add_force_arg,
    add_format_arg,
    add_threads_arg,
    check_out_file,
    fraction,
    positive_float,
    positive_int,
    print_json,
    print_table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "budget", __doc__)
    parser.add_argument("--checkpoint", required=True, help="dynamic model checkpoint (aap, or study deploy)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-mac-fraction", type=fraction, help="mean MACs / dense MACs in (0, 1], e.g. 0.3")
    target.add_argument(
        "--target-latency-ms", type=positive_float, help="mean per-clip latency by the --cost-table, in ms"
    )
    parser.add_argument("--cost-table", help="JSON from 'dance3d cost-table' of this model (with --target-latency-ms)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    add_force_arg(parser)
    add_data_args(parser)
    parser.add_argument("--split", default="val", choices=("train", "val", "test"), help="clips to fit on")
    parser.add_argument("--limit", type=positive_int, default=256, help="fit on the first N clips of the split")
    parser.add_argument("--knobs", default="", help="shift only these knobs, comma-separated (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="clips per forward pass")
    add_threads_arg(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def _cost(args: argparse.Namespace):
    """The budget's cost: the MAC fraction, or the latency the cost table predicts."""
    from dance3d.dynamic.budget import MAC_FRACTION, BudgetCost
    from dance3d.errors import ConfigError

    if args.target_latency_ms is None:
        if args.cost_table is not None:
            raise ConfigError("--cost-table goes with --target-latency-ms")
        return MAC_FRACTION
    if args.cost_table is None:
        raise ConfigError("--target-latency-ms needs --cost-table (a table of this model from 'dance3d cost-table')")
    from dance3d.dance.device_cost import BlockCostTable, mean_table_cost

    table = BlockCostTable.load(args.cost_table)
    return BudgetCost(
        "latency_ms",
        measure=lambda model, clips: mean_table_cost(model, clips, table, batch_size=args.batch_size),
        check=table.check_matches,
    )


def run(args: argparse.Namespace) -> int:
    from dance3d.checkpoint import load_checkpoint
    from dance3d.dynamic.budget import retarget_checkpoint

    check_out_file(args.out, force=args.force)
    knobs = tuple(v.strip() for v in args.knobs.split(",") if v.strip())
    if load_checkpoint(args.checkpoint).get("kind") == "copruned":
        return _run_copruned(args, knobs)
    cost = _cost(args)
    done = retarget_checkpoint(
        args.checkpoint,
        args.out,
        args.target_mac_fraction or args.target_latency_ms,
        cost=cost,
        data_source=args.data,
        skip_bad=args.skip_bad,
        split=args.split,
        limit=args.limit,
        knobs=knobs,
        batch_size=args.batch_size,
    )
    fit = done.fit
    if args.format == "json":
        print_json({**done.record, "checkpoint": str(done.path), "knobs": fit.knobs})
        return 0
    print_table(
        [
            ("wrote", str(done.path)),
            ("offset", f"{fit.offset:+.3f} on {', '.join(knobs) or 'every knob'}"),
            (f"mean {fit.cost} ({fit.num_clips} {args.split} clips)", f"{done.before:.4f} -> {fit.value:.4f}"),
            ("knobs", " ".join(f"{k}={v:+.3f}" for k, v in fit.knobs.items()) or "none"),
            ("evaluate it", f"dance3d eval --checkpoint {done.path} --split test"),
        ]
    )
    return 0


def _run_copruned(args: argparse.Namespace, knobs: tuple[str, ...]) -> int:
    """``budget`` of a co-pruned forecaster: one offset on its thresholds, to a MAC-fraction target."""
    from dance3d.cli.profiling_inputs import checkpoint_inputs
    from dance3d.copruning.budget import retarget_copruned
    from dance3d.errors import ConfigError
    from dance3d.loading import load_model

    if args.target_latency_ms is not None or args.cost_table is not None:
        raise ConfigError(
            "a co-pruned checkpoint is re-targeted with --target-mac-fraction: it has no device cost table"
        )
    loaded = load_model(args.checkpoint)
    inputs = checkpoint_inputs(loaded, args, split=args.split, count=args.limit)
    path, fit = retarget_copruned(
        loaded, inputs, args.target_mac_fraction, out=args.out, thresholds=knobs, batch_size=args.batch_size,
        data=loaded.data.source if args.data is None else args.data, split=args.split,
    )  # fmt: skip
    if args.format == "json":
        print_json({"checkpoint": str(path), "offset": fit.offset, "thresholds": fit.thresholds,
                    "mac_fraction_before": fit.mac_fraction_before, "mac_fraction": fit.mac_fraction,
                    "num_samples": fit.num_samples})  # fmt: skip
        return 0
    print_table(
        [
            ("wrote", str(path)),
            ("offset", f"{fit.offset:+.3f} logits on {', '.join(knobs) or 'every threshold'}"),
            (
                f"mean mac_fraction ({fit.num_samples} {args.split} samples)",
                f"{fit.mac_fraction_before:.4f} -> {fit.mac_fraction:.4f}",
            ),
            ("thresholds", " ".join(f"{k}={v:.4f}" for k, v in fit.thresholds.items())),
            ("evaluate it", f"dance3d eval --checkpoint {path} --split test"),
        ]  # fmt: skip
    )
    return 0
