"""``dance3d eval`` of a forecast checkpoint: scores of the model and of persistence, as JSON or a table."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from dance3d.checkpoint import LoadedModel
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.forecast.checkpoint import frames
from dance3d.forecast.evaluation import ForecastEvalResult, evaluate_forecast


def checkpoint_data(loaded: LoadedModel, args: argparse.Namespace) -> DataConfig:
    """The checkpoint's data settings with the user's source and ``--set data.*``, at the model's frame counts."""
    from dance3d.cli.common import data_for_checkpoint

    data = data_for_checkpoint(loaded.data, args)
    t_in, t_out = frames(loaded.checkpoint)
    return replace(data, forecast=replace(data.forecast, t_in=t_in, t_out=t_out))


def run_forecast_eval(loaded: LoadedModel, args: argparse.Namespace) -> int:
    from dance3d.cli.common import print_json, print_table
    from dance3d.copruning.recording import record_mac_fractions
    from dance3d.training.trainer import resolve_device

    data = checkpoint_data(loaded, args)
    dataset = build_dataset(data, args.split, classes=loaded.classes)
    with record_mac_fractions(loaded.model) as fractions:
        result = evaluate_forecast(
            loaded.model,
            dataset,
            batch_size=args.batch_size,
            device=resolve_device(args.device),
            num_workers=args.workers,
            limit=args.limit,
            progress=args.format == "table",
        )
    report = result.to_dict(with_records=args.records)
    report.update({"checkpoint": str(args.checkpoint), "task": "forecast", "data": data.source, "split": args.split})
    copruned = {}
    if fractions:  # a co-pruned model: its execution mode and the MACs its masks left, per sample
        copruned = {"execution": loaded.model.mode, "mac_fraction": sum(fractions) / len(fractions)}
        report.update(copruned)
        if args.records:
            for row, value in zip(report["records"], fractions, strict=True):
                row["mac_fraction"] = value
    if args.format == "json":
        print_json(report)
        return 0
    print_table(table_rows(result, source=data.source) + list(copruned.items()))
    return 0


def table_rows(result: ForecastEvalResult, *, source: str) -> list[tuple[str, Any]]:
    """Model and persistence side by side, one row per score."""

    def pair(key: str) -> str:
        return f"{result.model[key]:.4f}  (persistence {result.persistence[key]:.4f})"

    rows: list[tuple[str, Any]] = [("data", source), ("samples", result.num_samples),
                                   ("variables", ", ".join(result.variables))]  # fmt: skip
    rows += [(name, pair(name)) for name in ("mse", "mae", "rmse")]
    rows.append(("MSE / persistence", result.mse_ratio))
    rows.append(("MSE per lead", " ".join(f"{v:.3f}" for v in result.model["mse_per_lead"])))
    rows.append(("  persistence", " ".join(f"{v:.3f}" for v in result.persistence["mse_per_lead"])))
    for variable, value in result.model.get("lat_weighted_rmse", {}).items():
        rows.append((f"lat-weighted RMSE {variable}", f"{value:.4f}  (persistence "
                     f"{result.persistence['lat_weighted_rmse'][variable]:.4f})"))  # fmt: skip
    for threshold, scores in result.model.get("categorical", {}).items():
        base = result.persistence["categorical"][threshold]
        rows.append((f"CSI/POD/FAR >= {threshold}", f"{scores['csi']:.3f} {scores['pod']:.3f} {scores['far']:.3f}  "
                     f"(persistence {base['csi']:.3f} {base['pod']:.3f} {base['far']:.3f})"))  # fmt: skip
    return rows
