"""``dance3d copruning``: co-prune a trained forecaster (Dyna-Pruner) to a mean MAC fraction.

One importance map per sample, from a light mask generator, decides which spatial tiles are
computed and which hidden channels run; skipped tiles forecast persistence. SimVP computes
its kept tiles (with halos); the spatio-temporal Transformer (stformer-*, patch 4) drops the
tokens of skipped tiles, so its attention and MLPs run on fewer tokens; the ConvLSTM (convlstm-*)
updates its cells on the kept tiles and kept hidden channels only, at every step. The run
fine-tunes the generator (and the backbone) with soft masks and a MAC penalty (after an optional
stage that amplifies the variability of the gated units, --amplify-epochs), then writes
model.pt (kind 'copruned'), config.yaml and metrics.jsonl. 'dance3d eval --execution compact'
runs the result with only the kept tiles (tokens) and channels computed. Settings: --set copruning.KEY=V
and --set train.KEY=V (dance3d.copruning.config); the flags below are shortcuts.

After every epoch the run saves resume.pt; --resume continues a killed run from its last finished
epoch with the settings it was started with (a flag that contradicts them is refused, naming both
values; a finished run is left as it is).
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_device_arg,
    add_format_arg,
    add_threads_arg,
    check_out_dir,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    print_table,
)

MASKS = {"both": {}, "data": {"model_mask": False}, "model": {"data_mask": False}}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "copruning", __doc__)
    parser.add_argument(
        "--checkpoint",
        help="trained simvp-*, stformer-* or convlstm-* forecaster model.pt (from 'dance3d train'); "
        "--resume: the run's own",
    )
    parser.add_argument("--out", required=True, help="run directory (model.pt, config.yaml, metrics.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out with its own settings")
    parser.add_argument(
        "--target-mac-fraction",
        type=fraction,
        help="mean MAC fraction the penalty holds the masks at (copruning.target_mac_fraction)",
    )
    parser.add_argument("--tile-size", type=positive_int, help="data-mask tile side in pixels, a multiple of 4")
    parser.add_argument(
        "--masks",
        choices=tuple(MASKS),
        default="both",
        help="which masks S drives: both (default), data (tiles only) or model (channels only)",
    )
    parser.add_argument("--epochs", type=positive_int, help="fine-tuning epochs (train.epochs)")
    parser.add_argument("--batch-size", type=positive_int, help="samples per step (train.batch_size)")
    parser.add_argument("--lr", type=positive_float, help="backbone learning rate (train.lr)")
    parser.add_argument("--generator-lr", type=positive_float, help="mask generator learning rate")
    parser.add_argument("--sparsity-weight", type=non_negative_float, help="weight of the MAC penalty")
    parser.add_argument(
        "--distill-weight", type=non_negative_float, help="weight of the MSE to the dense model's forecast (0: off)"
    )
    parser.add_argument(
        "--amplify-epochs",
        type=non_negative_int,
        help="epochs of a first stage that amplifies the variability of the gated units (train.amplify_epochs; 0: off)",
    )
    add_device_arg(parser)
    add_threads_arg(parser)
    add_config_args(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "copruning.target_mac_fraction": args.target_mac_fraction,
        "copruning.tile_size": args.tile_size,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.lr": args.lr,
        "train.generator_lr": args.generator_lr,
        "train.sparsity_weight": args.sparsity_weight,
        "train.distill_weight": args.distill_weight,
        "train.amplify_epochs": args.amplify_epochs,
    }
    out = [f"{key}={value}" for key, value in flags.items() if value is not None]
    out += [f"copruning.{key}={str(value).lower()}" for key, value in MASKS[args.masks].items()]
    if args.format == "json":
        out.append("train.progress=false")
    return out + args.overrides


def run(args: argparse.Namespace) -> int:
    from dance3d.config import load_config
    from dance3d.copruning.config import CopruneRunConfig
    from dance3d.copruning.training import coprune, load_stored_run
    from dance3d.errors import ConfigError

    out = check_out_dir(args.out)
    base, dense = None, args.checkpoint
    if args.resume:
        stored = load_stored_run(out)
        base, dense = stored.config, dense or stored.started_from
    elif dense is None:
        raise ConfigError("--checkpoint is required (a trained forecaster's model.pt) unless --resume continues a run")
    config = load_config(CopruneRunConfig, base=base, path=args.config, overrides=_overrides(args))
    result = coprune(config, dense, out, device=args.device, resume=args.resume)
    report = {
        "checkpoint": str(result.checkpoint_path),
        "already_finished": result.already_finished,
        "val_mse": result.val_mse,
        "dense_val_mse": result.dense_val_mse,
        "val_persistence_mse": result.val_persistence_mse,
        "val_mac_fraction": result.val_mac_fraction,
        "history": result.history,
    }
    if args.format == "json":
        print_json(report)
        return 0
    if result.already_finished:
        print(f"{result.checkpoint_path} already finished its {config.train.epochs} epochs; nothing to do")
        return 0
    print_table([(key, value) for key, value in report.items() if key not in ("history", "already_finished")])
    return 0
