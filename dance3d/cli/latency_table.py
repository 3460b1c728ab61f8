"""``dance3d latency-table``: time every prunable layer over a width grid on this device (the MDP latency model)."""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_device_arg,
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
    parser = add_command(subparsers, "latency-table", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="zoo model name, with --clip-shape and --num-classes")
    source.add_argument("--checkpoint", help="dense model.pt: its model, head size and clip shape")
    parser.add_argument("--clip-shape", help="CxTxHxW for --model (default: the model's own clip)")
    parser.add_argument("--num-classes", type=positive_int, default=400, help="head size for --model")
    add_device_arg(parser)
    add_threads_arg(parser)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="numeric precision")
    parser.add_argument("--step", type=positive_int, help="width grid step (default: 16 on CPU, 8 on GPU)")
    parser.add_argument("--max-points", type=positive_int, default=8, help="most grid widths per group")
    add_repeats_arg(parser, default=10)
    parser.add_argument(
        "--rounds", type=positive_int, default=3, help="rounds over the whole grid; the lowest median is kept"
    )
    parser.add_argument(
        "--calibrate", type=non_negative_int, default=4, help="pruned models measured to fit scale + overhead"
    )
    parser.add_argument(
        "--validate", type=non_negative_int, default=4, help="other pruned models measured to check predictions"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the pruned models measured")
    parser.add_argument("--out", required=True, help="JSON file to write")
    add_force_arg(parser)
    add_format_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    check_out_file(args.out, force=args.force, suffixes=(".json",))
    from dance3d.cli.profiling_inputs import parse_clip_shape
    from dance3d.mdp.calibration import measure_table, summarize_validation
    from dance3d.mdp.lut import LatencyRuntime
    from dance3d.mdp.lut_measure import TableGrid
    from dance3d.models import create_model, model_info

    if args.checkpoint:
        import dance3d.loading  # noqa: F401 - registers every kind: older files get theirs inferred
        from dance3d.checkpoint import DENSE, load_checkpoint, load_network
        from dance3d.errors import ConfigError

        checkpoint = load_checkpoint(args.checkpoint)
        spec, data = checkpoint.model, checkpoint.data
        if checkpoint.kind != DENSE:
            raise ConfigError(f"{args.checkpoint} is not a dense checkpoint; the latency table is of a dense model")
        model = load_network(checkpoint, source=args.checkpoint)
        clip_shape = (3, data["num_frames"], data["height"], data["width"])
    else:
        frames, height, width = model_info(args.model).default_clip
        clip_shape = parse_clip_shape(args.clip_shape) if args.clip_shape else (3, frames, height, width)
        spec = {"name": args.model, "num_classes": args.num_classes, "options": {}}
        model = create_model(args.model, num_classes=args.num_classes)
    model.eval()
    torch.manual_seed(args.seed)
    runtime = LatencyRuntime(
        device=args.device, threads=args.threads, precision=args.precision, repeats=args.repeats, rounds=args.rounds
    )
    step = args.step or (16 if torch.device(args.device).type == "cpu" else 8)
    grid = TableGrid(step=step, max_points=args.max_points)
    table = measure_table(
        model, spec, clip_shape, runtime=runtime, grid=grid, calibrate=args.calibrate, validate=args.validate,
        seed=args.seed,
    )  # fmt: skip
    table.save(args.out)
    if args.format == "json":
        print_json({"out": str(args.out), **table.to_dict()})
        return 0
    rows = [("model", spec["name"]), ("clip", "x".join(map(str, clip_shape))), ("runtime", runtime),
            ("layers", len(table.layers)), ("groups", len(table.group_grids)),
            ("dense latency ms", table.dense_latency_ms), ("dense entries ms", table.dense_entries_ms)]  # fmt: skip
    print_table(rows + _model_rows(table))
    if table.predictor_candidates:
        print("latency models, leave-one-out over the calibration's pruned models (the smallest mean error is used):")
        print(_candidates_text(table))
    if table.validation:
        print("held-out validation (other pruned models):")
        print(_validation_text(table.validation))
        print_table(list(summarize_validation(table.validation).items()))
    print(f"saved {args.out}")
    return 0


def _model_rows(table) -> list[tuple[str, object]]:
    """The selected latency model: name, coefficients and (when cross-validated) its held-out error."""
    model = table.selected
    rows = [("latency model", model.name), ("scale", model.scale), ("offset ms", model.offset_ms)]
    if model.cv_mean_abs_error_pct is not None:
        rows += [
            ("cv mean abs error %", model.cv_mean_abs_error_pct),
            ("cv max abs error %", model.cv_max_abs_error_pct),
        ]
    return rows


def _candidates_text(table) -> str:
    import pandas as pd

    rows = [
        {**c.to_dict(), "selected": "*" if c.name == table.selected.name else ""} for c in table.predictor_candidates
    ]
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _validation_text(rows: list[dict]) -> str:
    import pandas as pd

    from dance3d.mdp.calibration import prediction_names

    columns = ["plan", "removed_blocks", "mean_width_fraction", "measured_ms"]
    columns += [f"{name}_{what}" for name in prediction_names(rows) for what in ("ms", "error_pct")]
    return pd.DataFrame(rows)[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}")
