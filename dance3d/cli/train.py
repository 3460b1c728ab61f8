"""``dance3d train``: train a dense model."""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_config_args, add_data_args, data_overrides
from dance3d.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a dense model", description=__doc__)
    parser.add_argument("--model", help="zoo model name (see 'dance3d models')")
    parser.add_argument(
        "--task",
        choices=("classify", "forecast"),
        help="what the data is for (default: inferred from --data); forecast defaults to storms and simvp-tiny",
    )
    add_data_args(parser)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--pretrained", metavar="FILE", help="local weights file to start from")
    parser.add_argument("--out", required=True, help="run directory (model.pt, config.yaml, metrics.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue the killed run in --out")
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.forecast.config import is_forecast_source
    from dance3d.training.trainer import RunConfig, train

    flags = {
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "pretrained": args.pretrained,
    }
    overrides = data_overrides(args) + [f"train.{k}={v}" for k, v in flags.items() if v is not None]
    forecasting = args.task == "forecast" or (args.task is None and args.data and is_forecast_source(args.data))
    base = forecast_defaults() if forecasting else None
    config = load_config(RunConfig, path=args.config, overrides=overrides + args.overrides, base=base)
    check_task(args.task, config.data.source)
    result = train(config, args.out, resume=args.resume)
    last = result.history[-1] if result.history else {}
    if "val_mse" in last:
        scores = f"val MSE {last['val_mse']:.4f}, persistence {last['val_persistence_mse']:.4f}"
        print(f"saved {result.checkpoint_path} ({scores})")
    else:
        print(f"saved {result.checkpoint_path} (val top-1 {last.get('val_top1', float('nan')):.4f})")
    return 0


def forecast_defaults() -> dict:
    """Forecasting without --data / --model: the storms data and the SimVP forecaster."""
    from dance3d.forecast.config import SYNTHETIC_SOURCES

    return {"data": {"source": SYNTHETIC_SOURCES[0]}, "train": {"model": "simvp-tiny"}}


def check_task(task: str | None, source: str) -> None:
    from dance3d.errors import ConfigError
    from dance3d.forecast.config import is_forecast_source

    inferred = "forecast" if is_forecast_source(source) else "classify"
    if task is not None and task != inferred:
        raise ConfigError(f"--task {task}: data {source!r} is {inferred} data")
