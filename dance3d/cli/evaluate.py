"""``dance3d eval``: evaluate a checkpoint on moving-digits or a class-per-folder video directory.

With ``--skip-bad`` a bad video is dropped from the score and listed (count and names), also with
``--workers``; it is never replaced by another clip.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_data_args,
    add_device_arg,
    add_format_arg,
    add_threads_arg,
    data_for_checkpoint,
    non_negative_int,
    positive_int,
    print_json,
    print_table,
)
from dance3d.cli.profiling_inputs import add_execution_args, apply_execution


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "eval", __doc__)
    parser.add_argument("--checkpoint", required=True, help="model.pt written by train/ava/aap/mdp")
    add_data_args(parser)
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to score")
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N clips")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="clips per forward pass")
    add_device_arg(parser)
    add_threads_arg(parser)
    parser.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    parser.add_argument("--records", action="store_true", help="with --format json: include per-clip records")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a data setting, e.g. --set data.forecast.variables=t2m (repeatable)",
    )  # fmt: skip
    add_execution_args(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dance3d.data.registry import build_dataset
    from dance3d.dynamic.gate_keys import distinct_keep_rates
    from dance3d.evaluation import evaluate
    from dance3d.loading import load_model
    from dance3d.training.trainer import resolve_device

    loaded = load_model(args.checkpoint)
    apply_execution(loaded.model, args)
    if loaded.kind in ("forecast", "copruned"):
        from dance3d.cli.forecast_eval import run_forecast_eval

        return run_forecast_eval(loaded, args)
    data = data_for_checkpoint(loaded.data, args)
    dataset = build_dataset(data, args.split, classes=loaded.classes)
    result = evaluate(
        loaded.model,
        dataset,
        classes=loaded.classes,
        batch_size=args.batch_size,
        device=resolve_device(args.device),
        num_workers=args.workers,
        limit=args.limit,
        progress=args.format == "table",
    )
    report = result.to_dict(with_records=args.records or args.format == "json")
    report.update({"checkpoint": str(args.checkpoint), "data": data.source, "split": args.split})
    if loaded.kind == "dynamic":
        from dance3d.dynamic.checkpoint import applied_knobs

        report["execution"] = loaded.model.mode
        report["knobs"] = applied_knobs(loaded.model)
        report["distinct_keep_rates_per_gate"] = distinct_keep_rates(result.records)
    if args.format == "json":
        print_json(report)
        return 0
    rows = [("data", data.source), ("clips", result.num_clips), ("top-1", result.top1), ("top-5", result.top5)]
    if result.skipped:
        listed = ", ".join(f"{path} ({reason})" for path, reason in result.skipped)
        rows.append(("skipped (not scored)", f"{len(result.skipped)}: {listed}"))
    rows += [(f"  class {name}", acc if acc == acc else "no clips") for name, acc in result.per_class_accuracy.items()]
    for key, stats in result.clip_stat_summary.items():
        rows.append((key, " ".join(f"{k}={v:.3f}" for k, v in stats.items())))
    if report.get("knobs"):
        rows.append(("knobs", " ".join(f"{k}={v:g}" for k, v in report["knobs"].items())))
    for axis, counts in report.get("distinct_keep_rates_per_gate", {}).items():
        rows.append((f"distinct {axis} per gate", ", ".join(map(str, counts))))
    print_table(rows)
    return 0
