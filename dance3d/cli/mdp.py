"""``dance3d mdp``: latency-constrained joint channel + block pruning of a dense checkpoint (solved exactly).

``--target-latency`` is a fraction of the dense model's latency in the table (``0.5``) or an absolute
time (``12ms``). The pruned, fine-tuned model is saved as ``OUT/model.pt`` (kind ``pruned``), which
``dance3d eval`` and ``dance3d profile`` accept.
"""

from __future__ import annotations

import argparse

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_threads_arg,
    check_out_dir,
    positive_float,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "mdp", __doc__)
    parser.add_argument("--checkpoint", required=True, help="dense model.pt (from 'dance3d train')")
    parser.add_argument("--latency-table", required=True, help="JSON from 'dance3d latency-table'")
    parser.add_argument("--target-latency", required=True, help="fraction of dense latency (0.5) or time (12ms)")
    parser.add_argument("--out", required=True, help="run directory (model.pt, solution.json, mdp.yaml, ...)")
    parser.add_argument("--epochs", type=positive_int, help="fine-tune epochs (train.epochs)")
    parser.add_argument("--lr", type=positive_float, help="fine-tune learning rate (train.lr)")
    parser.add_argument("--no-finetune", action="store_true", help="save the pruned model without fine-tuning")
    parser.add_argument("--no-block-removal", action="store_true", help="prune channels only")
    add_threads_arg(parser)
    parser.add_argument(
        "--width-step", type=positive_int, help="solver width step inside the table's grid (mdp.width_step)"
    )
    add_config_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dance3d.checkpoint import load_checkpoint
    from dance3d.config import load_config
    from dance3d.mdp.pipeline import MdpRunConfig, config_base, require_dense, run_mdp

    check_out_dir(args.out)
    overrides = [f"mdp.target_latency={json.dumps(args.target_latency)}"]
    flags = {"train.epochs": args.epochs, "train.lr": args.lr, "mdp.width_step": args.width_step}
    overrides += [f"{k}={v}" for k, v in flags.items() if v is not None]
    overrides += ["mdp.finetune=false"] * args.no_finetune + ["mdp.remove_blocks=false"] * args.no_block_removal
    checkpoint = load_checkpoint(args.checkpoint)
    require_dense(checkpoint, args.checkpoint)
    base = config_base(checkpoint)
    config = load_config(MdpRunConfig, path=args.config, overrides=overrides + args.overrides, base=base)
    result = run_mdp(config, args.checkpoint, args.latency_table, args.out)
    s = result.solution
    measured = "n/a (not this device)" if result.measured_ms is None else f"{result.measured_ms:.3f} ms"
    print(f"budget {s.budget_ms:.3f} ms, predicted {s.predicted_ms:.3f} ms, measured {measured}")
    print(f"latency model: {_model_text(result.latency_model)}")
    for r in result.refinement_rounds:
        print(f"  round {r['round']}: budget {r['effective_budget_ms']:.3f} ms, predicted {r['predicted_ms']:.3f} ms, "
              f"measured {r['measured_ms']:.3f} ms ({r['prediction_error_pct']:+.1f}%)")  # fmt: skip
    print(f"removed blocks: {', '.join(s.plan.removed_blocks) or 'none'}; kept importance {s.objective:.4f}")
    print(f"MILP: {s.status}, {s.solve_s:.2f} s, gap {s.mip_gap:.2e}, {s.num_variables} variables")
    last = result.history[-1] if result.history else {}
    print(f"saved {result.checkpoint_path} (val top-1 {last.get('val_top1', float('nan')):.4f})")
    return 0


def _model_text(model) -> str:
    text = f"{model.name} ({model.scale:.4g} x entries + {model.offset_ms:.4g} ms"
    if model.cv_mean_abs_error_pct is None:
        return text + ")"
    return text + f"; held-out error mean {model.cv_mean_abs_error_pct:.1f}%, max {model.cv_max_abs_error_pct:.1f}%)"
