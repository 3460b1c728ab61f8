"""``dance3d cost-table``: time each gated block of a dynamic model at every keep level on this device.

The table (JSON) is what ``dance3d aap --set aap.cost=latency`` and ``dance3d budget --target-latency-ms``
charge: per gated block and level, the batch-1 latency of the block run as compact execution runs it
(joules too, with --energy, where a meter works), the whole model and the controller. A dense or
MDP-pruned checkpoint is converted with the dynamic config ``dance3d aap`` uses by default; a dynamic
checkpoint is timed as it is. --check also times the whole model at a few keep levels against the table.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_device_arg,
    add_energy_arg,
    add_force_arg,
    add_format_arg,
    add_repeats_arg,
    add_threads_arg,
    check_out_file,
    non_negative_int,
    positive_int,
    print_json,
    print_table,
)

CHECK_KEEP_FRACTIONS = (1.0, 0.75, 0.5, 0.25)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "cost-table", __doc__)
    parser.add_argument("--checkpoint", required=True, help="dense, pruned (mdp) or dynamic (aap) model.pt")
    add_device_arg(parser)
    add_threads_arg(parser)
    add_repeats_arg(parser, default=10)
    parser.add_argument(
        "--rounds", type=positive_int, default=3, help="rounds over every entry; the lowest median is kept"
    )
    add_energy_arg(parser, default=False)
    parser.add_argument(
        "--check", action="store_true", help="time the whole model at keep levels 1, 0.75, 0.5, 0.25 against the table"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random masks timed")
    parser.add_argument("--out", required=True, help="JSON file to write")
    add_force_arg(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out, force=args.force, suffixes=(".json",))
    import dance3d.loading  # noqa: F401 - registers every checkpoint kind
    from dance3d.dance.device_cost_measure import build_cost_table, check_prediction, dynamic_model_of, format_check
    from dance3d.mdp.lut import LatencyRuntime
    from profiling import collect_env
    from profiling.energy import resolve_meter

    model, spec = dynamic_model_of(args.checkpoint)
    runtime = LatencyRuntime(device=args.device, threads=args.threads, repeats=args.repeats, rounds=args.rounds)
    meter, why = resolve_meter("auto", args.device) if args.energy else (None, "not requested")
    table = build_cost_table(
        model, spec, runtime=runtime, meter=meter, energy_status=why or "not requested", seed=args.seed,
        env=collect_env(),
    )  # fmt: skip
    table.save(args.out)
    checks = check_prediction(model, table, runtime, keep_fractions=CHECK_KEEP_FRACTIONS) if args.check else []
    if args.format == "json":
        print_json({"out": str(args.out), "check": checks, **table.to_dict()})
        return 0
    entries = sum(b.latency_ms.size for b in table.blocks)
    print_table([
        ("model", spec["name"]), ("clip", "x".join(map(str, table.clip_shape))), ("runtime", runtime),
        ("gated blocks", len(table.blocks)), ("entries", entries), ("dense ms", table.dense_ms),
        ("controller ms", table.controller_ms), ("overhead ms", table.overhead()),
        ("energy", table.energy_status if not table.has_energy else f"ok ({table.energy_meter})"),
    ])  # fmt: skip
    if checks:
        print(format_check(checks))
    print(f"saved {args.out}")
    return 0
