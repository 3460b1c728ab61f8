"""``dance3d ava``: DANCE stage 1, fine-tune a dense or MDP-pruned checkpoint to amplify activation variability."""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_threads_arg,
    check_out_dir,
    non_negative_float,
    positive_float,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "ava", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, help="dense or pruned model.pt (from 'dance3d train' or 'dance3d mdp')"
    )
    parser.add_argument("--out", required=True, help="run directory (model.pt, config.yaml, metrics.jsonl, PNG)")
    parser.add_argument("--epochs", type=positive_int, help="fine-tune epochs (ava.epochs)")
    parser.add_argument("--lr", type=positive_float, help="learning rate (ava.lr)")
    parser.add_argument("--weight", type=non_negative_float, help="variability weight lambda (ava.variability_weight)")
    add_threads_arg(parser)
    parser.add_argument(
        "--preset", default="default", help="DANCE settings: default, quickstart or smoke (dance3d.dance.pipeline)"
    )
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.checkpoint import load_checkpoint
    from dance3d.dance.pipeline import load_run_config, run_ava

    check_out_dir(args.out)
    checkpoint = load_checkpoint(args.checkpoint)
    flags = {"epochs": args.epochs, "lr": args.lr, "variability_weight": args.weight}
    overrides = [f"ava.{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
    config = load_run_config(preset_name=args.preset, data=checkpoint["data"], path=args.config, overrides=overrides)
    run = run_ava(config, args.checkpoint, args.out)
    summary = run.result.summary()
    print(
        f"saved {run.checkpoint_path} (val top-1 {summary['top1_before']:.4f} -> {summary['top1_after']:.4f}; "
        f"mean CV {_mean(summary['cv_mean_before']):.3f} -> {_mean(summary['cv_mean_after']):.3f})"
    )
    return 0


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / max(1, len(values))
