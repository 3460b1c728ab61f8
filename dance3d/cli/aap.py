"""``dance3d aap``: DANCE stage 2, train the per-clip pruning controller on a frozen dense/AVA/MDP-pruned model."""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_threads_arg,
    check_out_dir,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "aap", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, help="dense or pruned model.pt (from 'dance3d train', 'ava' or 'mdp')"
    )
    parser.add_argument("--out", required=True, help="run directory (model.pt, config.yaml, metrics.jsonl)")
    parser.add_argument("--epochs", type=positive_int, help="controller training epochs (aap.epochs)")
    parser.add_argument("--lr", type=positive_float, help="learning rate (aap.lr)")
    parser.add_argument(
        "--target-mac-fraction", type=fraction, help="mean MAC fraction to train for (aap.target_mac_fraction)"
    )
    parser.add_argument("--mac-penalty", type=non_negative_float, help="weight of the budget term (aap.mac_penalty)")
    parser.add_argument(
        "--cost", choices=("macs", "latency", "energy"), help="what the budget term charges (aap.cost; default macs)"
    )
    parser.add_argument("--cost-table", help="JSON from 'dance3d cost-table' for latency/energy (aap.cost_table)")
    parser.add_argument(
        "--target-latency-ms", type=positive_float, help="per-clip latency to train for (aap.target_latency_ms)"
    )
    parser.add_argument(
        "--target-energy-j", type=positive_float, help="per-clip joules to train for (aap.target_energy_j)"
    )
    add_threads_arg(parser)
    parser.add_argument(
        "--preset", default="default", help="DANCE settings: default, quickstart or smoke (dance3d.dance.pipeline)"
    )
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dance3d.checkpoint import load_checkpoint
    from dance3d.dance.pipeline import load_run_config, run_aap

    check_out_dir(args.out)
    checkpoint = load_checkpoint(args.checkpoint)
    flags = {
        "epochs": args.epochs,
        "lr": args.lr,
        "target_mac_fraction": args.target_mac_fraction,
        "mac_penalty": args.mac_penalty,
        "cost": args.cost,
        "cost_table": None if args.cost_table is None else json.dumps(args.cost_table),
        "target_latency_ms": args.target_latency_ms,
        "target_energy_j": args.target_energy_j,
    }
    overrides = [f"aap.{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
    config = load_run_config(preset_name=args.preset, data=checkpoint["data"], path=args.config, overrides=overrides)
    result = run_aap(config, args.checkpoint, args.out)
    print(
        f"saved {result.checkpoint_path} (val top-1 {result.val_top1:.4f}, "
        f"mean MAC fraction {result.val_mac_fraction:.4f})"
    )
    if result.val_table_cost is not None:
        unit = "ms" if config.aap.cost == "latency" else "J"
        print(f"mean {config.aap.cost} per clip by the cost table: {result.val_table_cost:.4g} {unit}")
    return 0
