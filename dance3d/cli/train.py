"""``dance3d train``: train a dense model.

``--resume`` continues the run saved in ``--out`` with the settings it was started with (its
``config.yaml``); a flag that contradicts them is refused, naming both values.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_data_args,
    add_device_arg,
    add_format_arg,
    add_threads_arg,
    check_out_dir,
    data_overrides,
    positive_float,
    positive_int,
    print_json,
)
from dance3d.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "train", __doc__)
    parser.add_argument("--model", help="zoo model name (see 'dance3d models'; train.model)")
    parser.add_argument(
        "--task",
        choices=("classify", "forecast"),
        help="what the data is for (default: inferred from --data); forecast defaults to storms and simvp-tiny",
    )
    add_data_args(parser)
    parser.add_argument("--epochs", type=positive_int, help="epochs to train (train.epochs)")
    parser.add_argument("--batch-size", type=positive_int, help="clips per step (train.batch_size)")
    parser.add_argument("--lr", type=positive_float, help="peak learning rate (train.lr)")
    add_device_arg(parser, default=None)
    add_threads_arg(parser)
    parser.add_argument("--pretrained", metavar="FILE", help="local weights file to start from")
    parser.add_argument("--out", required=True, help="run directory (model.pt, config.yaml, metrics.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out with its own settings")
    add_config_args(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "threads": args.threads or None,
        "pretrained": args.pretrained,
    }
    return data_overrides(args) + [f"train.{k}={v}" for k, v in flags.items() if v is not None]


def run(args: argparse.Namespace) -> int:
    from dance3d.data.forecast.config import is_forecast_source
    from dance3d.training.trainer import RunConfig, train

    out = check_out_dir(args.out)
    base = None
    if args.resume:
        from dance3d.checkpoint import load_checkpoint

        checkpoint = out / "model.pt"
        if checkpoint.is_file():
            base = load_checkpoint(checkpoint).get("config")
    elif args.task == "forecast" or (args.task is None and args.data and is_forecast_source(args.data)):
        base = forecast_defaults()
    config = load_config(RunConfig, base=base, path=args.config, overrides=_flag_overrides(args) + args.overrides)
    check_task(args.task, config.data.source)
    with contextlib.redirect_stdout(sys.stderr) if args.format == "json" else contextlib.nullcontext():
        result = train(config, out, resume=args.resume)  # its log lines stay off a JSON stdout
    last = result.history[-1] if result.history else {}
    if args.format == "json":
        print_json({"checkpoint": str(result.checkpoint_path), "already_finished": result.already_finished,
                    "history": result.history, "skipped_videos": [list(v) for v in result.skipped_videos]})  # fmt: skip
        return 0
    if result.already_finished:
        print(f"{result.checkpoint_path} already finished its {config.train.epochs} epochs; nothing to do")
        return 0
    if "val_mse" in last:
        val = f"val MSE {last['val_mse']:.4f}, persistence {last['val_persistence_mse']:.4f}"
    elif "val_top1" in last:
        val = f"val top-1 {last['val_top1']:.4f}"
    else:
        val = f"no val split in {config.data.source}"
    print(f"saved {result.checkpoint_path} ({val})")
    return 0


def forecast_defaults() -> dict:
    """Forecasting without --data / --model: the storms data and the SimVP forecaster."""
    from dance3d.data.forecast.config import SYNTHETIC_SOURCES

    return {"data": {"source": SYNTHETIC_SOURCES[0]}, "train": {"model": "simvp-tiny"}}


def check_task(task: str | None, source: str) -> None:
    from dance3d.data.forecast.config import is_forecast_source
    from dance3d.errors import ConfigError

    inferred = "forecast" if is_forecast_source(source) else "classify"
    if task is not None and task != inferred:
        raise ConfigError(f"--task {task}: data {source!r} is {inferred} data")
