"""``dance3d profile``: MACs, params, bytes, latency and (where a meter works) joules per clip."""

from __future__ import annotations

import argparse

import numpy as np

from dance3d.cli.common import add_command, add_energy_arg, add_format_arg, add_repeats_arg, print_json, print_table
from dance3d.cli.profiling_inputs import add_model_source_args, load_model_and_clips


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "profile", __doc__)
    add_model_source_args(parser)
    add_repeats_arg(parser, default=20)
    add_energy_arg(parser)
    parser.add_argument("--layers", action="store_true", help="with --format json: per-layer and per-operator rows")
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from profiling import per_clip_macs, profile

    name, model, clips = load_model_and_clips(args)
    meter = "auto" if args.energy else None
    report = profile(model, clips[:1], device=args.device, repeats=args.repeats, meter=meter)
    result = report.to_dict(tables=args.layers)
    result["model"] = name
    if hasattr(model, "mode"):  # dynamic: the execution mode measured
        result["execution"] = model.mode
    if len(clips) > 1:  # dynamic models cost differently per clip
        macs = np.array(per_clip_macs(model, clips), dtype=float)
        result["per_clip_macs"] = {
            "clips": len(macs),
            "mean": float(macs.mean()),
            **{f"p{q}": float(np.percentile(macs, q)) for q in (10, 50, 90)},
        }
    if args.format == "json":
        print_json(result)
        return 0
    keys = ("model", "device", "params", "macs", "bytes_read", "bytes_written", "latency_ms", "latency_p90_ms",
            "energy_j", "energy_source", "energy_status")  # fmt: skip
    print_table([(k, result[k]) for k in keys])
    if "per_clip_macs" in result:
        print_table([(f"per-clip macs {k}", v) for k, v in result["per_clip_macs"].items()])
    print(report.per_layer.to_string(max_rows=40))
    return 0
