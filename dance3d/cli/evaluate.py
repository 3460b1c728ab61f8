"""``dance3d eval``: evaluate a checkpoint on moving-digits or a class-per-folder video directory."""

from __future__ import annotations

import argparse

from dance3d.cli.common import add_data_args, add_format_arg, data_for_checkpoint, print_json, print_table
from dance3d.cli.profiling_inputs import add_execution_args, apply_execution


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="model.pt written by train/ava/aap/mdp")
    add_data_args(parser)
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, help="evaluate only the first N clips")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
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
    from dance3d.training.checkpoint import load_model
    from dance3d.training.trainer import resolve_device

    loaded = load_model(args.checkpoint)
    apply_execution(loaded.model, args)
    if loaded.kind == "forecast":
        from dance3d.forecast.report import run_forecast_eval

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
    if getattr(dataset, "skipped", None):
        report["skipped"] = dataset.summary()
    if args.format == "json":
        print_json(report)
        return 0
    rows = [("data", data.source), ("clips", result.num_clips), ("top-1", result.top1), ("top-5", result.top5)]
    rows += [(f"  class {name}", acc) for name, acc in result.per_class_accuracy.items()]
    for key, stats in result.clip_stat_summary.items():
        rows.append((key, " ".join(f"{k}={v:.3f}" for k, v in stats.items())))
    if report.get("knobs"):
        rows.append(("knobs", " ".join(f"{k}={v:g}" for k, v in report["knobs"].items())))
    for axis, counts in report.get("distinct_keep_rates_per_gate", {}).items():
        rows.append((f"distinct {axis} per gate", ", ".join(map(str, counts))))
    if "skipped" in report:
        rows.append(("skipped", report["skipped"]))
    print_table(rows)
    return 0
