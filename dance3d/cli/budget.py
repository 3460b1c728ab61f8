"""``dance3d budget``: re-target a dynamic checkpoint to a mean MAC fraction, without training.

    dance3d budget --checkpoint runs/aap/model.pt --target-mac-fraction 0.3 --out runs/aap-0.3/model.pt

Shifts the controller's logits (all run-time knobs, or ``--knobs``) by the largest offset whose mean
MAC fraction on validation clips is at most the target, and writes a checkpoint that runs there.
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
    positive_int,
    print_json,
    print_table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "budget", __doc__)
    parser.add_argument("--checkpoint", required=True, help="dynamic model checkpoint (aap, or study deploy)")
    parser.add_argument(
        "--target-mac-fraction", type=fraction, required=True, help="mean MACs / dense MACs in (0, 1], e.g. 0.3"
    )
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


def run(args: argparse.Namespace) -> int:
    from dance3d.dynamic.budget import retarget_checkpoint

    check_out_file(args.out, force=args.force)
    knobs = tuple(v.strip() for v in args.knobs.split(",") if v.strip())
    done = retarget_checkpoint(
        args.checkpoint,
        args.out,
        args.target_mac_fraction,
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
            (
                f"mean MAC fraction ({fit.num_clips} {args.split} clips)",
                f"{done.mac_fraction_before:.4f} -> {fit.mac_fraction:.4f}",
            ),
            ("knobs", " ".join(f"{k}={v:+.3f}" for k, v in fit.knobs.items()) or "none"),
            ("evaluate it", f"dance3d eval --checkpoint {done.path} --split test"),
        ]
    )
    return 0
