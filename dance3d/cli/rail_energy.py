"""``dance3d rail-energy``: energy of a run from a rail log recorded on the board by ``rail_logger.py``.

For boards whose Python is too old for dance3d (JetPack 4: 3.6, JetPack 5: 3.8): run the stdlib-only
logger there and the model elsewhere on the same clock (a container with a newer Python), then pair
the log with the run's wall-clock window: a sweep table recorded with timed windows (every row's
``window_start_epoch_s``/``window_end_epoch_s``), or ``--start``/``--end`` of one run.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_command, add_format_arg, positive_float, positive_int, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "rail-energy", __doc__)
    parser.add_argument("--log", required=True, help="CSV written by profiling/rail_logger.py")
    window = parser.add_mutually_exclusive_group(required=True)
    window.add_argument("--sweep", help="sweep table (.csv/.parquet) with timed windows: adds rail_* columns")
    window.add_argument("--start", type=positive_float, help="run start, epoch seconds (time.time()), with --end")
    parser.add_argument("--end", type=positive_float, help="run end, epoch seconds")
    parser.add_argument(
        "--calls", type=positive_int, default=1, help="calls in the --start/--end window (energy per call)"
    )
    parser.add_argument("--rails", help="comma-separated rails to sum instead of the board total")
    parser.add_argument("--out", help="with --sweep: where to write the joined table (default: print it)")
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dance3d.errors import ConfigError, DataError
    from profiling.rail_log import join_rail_log, load_rail_log

    rails = [r for r in args.rails.split(",") if r] if args.rails else None
    if args.start is not None and args.end is None:
        raise ConfigError("--start needs --end")
    try:
        log = load_rail_log(args.log)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the rail log: {exc}") from exc
    if args.sweep is None:
        try:
            energy_j = log.energy_j(args.start, args.end, rails=rails)
        except (KeyError, ValueError) as exc:
            raise DataError(_message(exc)) from exc
        result = {
            "window_energy_j": energy_j,
            "energy_per_call_j": energy_j / args.calls,
            "power_w": energy_j / (args.end - args.start),
            "window_s": args.end - args.start,
            "rails": ",".join(rails) if rails else "board total",
        }
        if args.format == "json":
            print_json(result)
        else:
            print_table(list(result.items()))
        return 0
    from profiling.sweep import read_table, write_table

    sweep = Path(args.sweep)
    try:
        joined = join_rail_log(read_table(sweep), log, rails=rails)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{sweep}: {_message(exc)}") from exc
    if args.out:
        write_table(joined, Path(args.out))
        print(f"saved {args.out} ({len(joined)} rows)")
    elif args.format == "json":
        print_json(joined.to_dict("records"))
    else:
        print(joined.to_string(index=False))
    return 0


def _message(exc: Exception) -> str:
    """The error's text (a KeyError's without the quotes its str() adds)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
