"""``dance3d stack``: static + dynamic, stacked: MDP at a latency target, then DANCE with the device objective.

    dance3d stack --checkpoint runs/dense/model.pt --latency-table lut.json --target-latency 0.7 \\
        --dance-target 0.7 --out runs/stack

Writes OUT/mdp (the pruned model), OUT/cost_table.json (its gated blocks timed at every keep level with the
latency table's runtime), OUT/ava and OUT/aap (AAP charged the table's latency, or joules with --cost energy,
toward --dance-target), and OUT/stack.json. Stages already done are reused: re-running resumes a killed run.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_command, add_config_args, add_threads_arg, check_out_dir, non_negative_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "stack", __doc__)
    parser.add_argument("--checkpoint", required=True, help="dense model.pt (from 'dance3d train')")
    parser.add_argument("--latency-table", required=True, help="JSON from 'dance3d latency-table' (its device too)")
    parser.add_argument("--target-latency", required=True, help="MDP: fraction of dense latency (0.7) or time (12ms)")
    parser.add_argument(
        "--dance-target",
        help="DANCE: fraction of the pruned model's dense table cost (0.7), or 4ms / 0.05J (stack.dance_target)",
    )
    parser.add_argument("--cost", choices=("latency", "energy"), help="AAP's device objective (stack.cost)")
    parser.add_argument(
        "--latency-clips", type=non_negative_int, help="test clips timed at the end, 0: none (stack.latency_clips)"
    )
    parser.add_argument("--preset", default="default", help="DANCE settings: default, quickstart or smoke")
    parser.add_argument("--out", required=True, help="run directory")
    add_threads_arg(parser)
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dance3d.checkpoint import load_checkpoint
    from dance3d.config import load_config, to_dict
    from dance3d.dance.pipeline import preset
    from dance3d.dance.stacked import StackedRunConfig, run_stacked
    from dance3d.mdp.pipeline import config_base, require_dense

    check_out_dir(args.out)
    checkpoint = load_checkpoint(args.checkpoint)
    require_dense(checkpoint, args.checkpoint)
    base = {**to_dict(preset(args.preset)), **config_base(checkpoint)}
    flags = {
        "mdp.target_latency": json.dumps(args.target_latency),
        "stack.dance_target": None if args.dance_target is None else json.dumps(args.dance_target),
        "stack.cost": args.cost,
        "stack.latency_clips": args.latency_clips,
    }
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
    config = load_config(StackedRunConfig, path=args.config, overrides=overrides, base=base)
    summary = run_stacked(config, args.checkpoint, args.latency_table, args.out)
    mdp, aap, unit = summary["mdp"], summary["aap"], summary["unit"]
    measured = mdp["measured_ms"]
    print(f"MDP: budget {mdp['requested_budget_ms']:.3f} ms, predicted {mdp['predicted_ms']:.3f} ms, measured "
          f"{'n/a' if measured is None else f'{measured:.3f} ms'}")  # fmt: skip
    print(f"DANCE on it: {summary['cost']} target {summary['target_cost']:.4g} {unit} per clip "
          f"(dense {summary['dense_table_cost']:.4g} {unit}); val top-1 {aap.get('val_top1', float('nan')):.4f}, "
          f"MAC fraction {aap.get('val_mac_fraction', float('nan')):.4f}")  # fmt: skip
    if latency := summary["latency"]:
        print(f"compact batch-1 latency on {latency['latency_clips']} test clips: measured "
              f"{latency['measured_compact_ms']:.3f} ms, table {latency['predicted_ms']:.3f} ms "
              f"({latency['prediction_error_pct']:+.1f}%)")  # fmt: skip
    print(f"test top-1 {summary['test']['top1']:.4f}; saved {summary['checkpoints']['aap']} and {args.out}/stack.json")
    return 0
