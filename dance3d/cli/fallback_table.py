"""``dance3d fallback-table``: where a co-pruned SimVP's or ConvLSTM's compact execution should compute the whole map.

Compact execution of a co-pruned SimVP or ConvLSTM computes each sample's kept tiles with their
halos; above some number of kept tiles the whole map (skipped tiles masked, the same forecast) is
faster. This
times both paths on one sample of the checkpoint's data, at --levels kept-tile counts, interleaved,
and writes the measurements (JSON). 'dance3d eval' / 'dance3d profile' --execution compact
--calibration FILE then run a sample on the whole map at or above the measured break-even. The file
holds the input size and device it was measured on; another input size is refused.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from dance3d.cli.common import (
    add_command,
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "fallback-table", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, help="a co-pruned SimVP or ConvLSTM model.pt (from 'dance3d copruning')"
    )
    parser.add_argument("--split", default="test", help="split whose first sample is timed (default: test)")
    parser.add_argument("--levels", type=positive_int, default=8, help="kept-tile counts timed (default: 8)")
    add_threads_arg(parser)
    add_repeats_arg(parser, default=7)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random kept tiles timed")
    parser.add_argument("--out", required=True, help="JSON file to write")
    add_force_arg(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out, force=args.force, suffixes=(".json",))
    from dance3d.cli.profiling_inputs import checkpoint_inputs
    from dance3d.copruning.fallback import WholeMapFallback, calibrate_fallback
    from dance3d.errors import ConfigError
    from dance3d.loading import load_model

    loaded = load_model(args.checkpoint)
    if not isinstance(loaded.model, WholeMapFallback):
        raise ConfigError(
            f"--checkpoint must be a co-pruned SimVP or ConvLSTM (kind 'copruned', simvp-* or convlstm-*), got "
            f"{type(loaded.model).__name__}: the other models' compact execution has no whole-map fallback"
        )
    no_data_args = argparse.Namespace(data=None, overrides=[])  # the data it was trained on
    sample = checkpoint_inputs(loaded, no_data_args, split=args.split, count=1)
    table = calibrate_fallback(loaded.model.eval(), sample, levels=args.levels, repeats=args.repeats, seed=args.seed)
    table.save(args.out)
    if args.format == "json":
        print_json({"out": str(args.out), "break_even_tiles": table.break_even_tiles, **asdict(table)})
        return 0
    rows = [
        (f"{kept}/{table.tiles} tiles", f"tiled {table.tiled_ms[kept]:.2f} ms, whole map {table.whole_ms[kept]:.2f} ms")
        for kept in sorted(table.tiled_ms)
    ]
    break_even = table.break_even_tiles
    print_table([
        ("input", "x".join(map(str, table.input_hw))), ("device", table.device), *rows,
        ("break-even", "never (tiles are faster)" if break_even is None else f"{break_even} kept tiles"),
    ])  # fmt: skip
    print(f"saved {args.out}")
    return 0
