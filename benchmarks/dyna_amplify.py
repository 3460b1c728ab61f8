"""Does an amplifying first stage help co-pruning? plain vs extra fine-tuning vs amplified, one seed.

    python benchmarks/dyna_amplify.py --dense-checkpoint W/dense/model.pt --work W [--seed S] --threads 1
    python benchmarks/dyna_amplify.py --quick --threads 1          # smoke run (trains its own tiny dense)
    python benchmarks/dyna_amplify.py --dense-checkpoint W/dense/model.pt --work W [--seed S] --retarget 0.30

Co-prunes one dense forecaster (the storms Transformer of the Dyna-Pruner runs; --dense-checkpoint,
or a dense model trained here with the dyna_forecast settings) three times with the dyna_forecast
benchmark's coupled settings: alone (plain), after --amplify-epochs epochs of plain MSE fine-tuning
(extra) and after as many epochs of the amplifying loss (amplified); evaluates all three and the
dense model on the test split, per-sample records (records.parquet) and paired Wilcoxon tests of
amplified against the other two. Writes benchmarks/results/dyna_amplify/<tag>[-seedS]/result.json.
--retarget F compares the three models a finished run left in --work again at one MAC budget: each
re-targeted to a mean MAC fraction of at most F on the validation split (the `dance3d budget` fit,
no training); tag retarget-F[-seedS] (TAG-retarget-F[-seedS] with --tag TAG).
Logic: dance3d/copruning/amplify_benchmark.py; design:
docs/experiments/2026-12-07-dyna-forecast-amplify-design.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from dance3d.benchmark_results import ResultDir
from dance3d.copruning.amplify_benchmark import BENCHMARK, run_amplify_benchmark, run_retarget, table
from dance3d.copruning.benchmark import DynaSettings, quick_settings
from dance3d.errors import ConfigError

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense-checkpoint", help="a trained stformer, simvp or convlstm forecaster on storms")
    parser.add_argument("--work", help="folder for the runs' checkpoints (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="the co-pruning runs' seed (default 0)")
    parser.add_argument("--amplify-epochs", type=int, default=2, help="epochs of the first stage (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--tag", default="default", help="result folder name (default: 'default')")
    parser.add_argument("--results-root", default=str(RESULTS), help="results root (benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a tiny dense model and splits, one epoch each")
    parser.add_argument(
        "--retarget", type=float, help="re-target a finished run's models in --work to this MAC fraction"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = DynaSettings(backbone="stformer-tiny", seed=args.seed)
    try:
        out, payload = (retarget if args.retarget is not None else compare_arms)(args, settings)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(payload))
    print(f"saved {out.save(payload)}")
    return 0


def compare_arms(args: argparse.Namespace, settings: DynaSettings) -> tuple[ResultDir, dict]:
    """The three arms co-pruned from ``--dense-checkpoint`` (or a dense model trained here) and compared."""
    if args.dense_checkpoint and not Path(args.dense_checkpoint).is_file():
        raise ConfigError(f"--dense-checkpoint {args.dense_checkpoint} does not exist")
    if args.quick:
        settings = replace(quick_settings(settings), height=32, width=32)
    tag = args.tag + (f"-seed{args.seed}" if args.seed else "") + ("-quick" if args.quick else "")
    out = ResultDir(Path(args.results_root), BENCHMARK, tag)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="dyna_amplify_"))
    try:
        return out, run_amplify_benchmark(
            settings, amplify_epochs=1 if args.quick else args.amplify_epochs, work=work, out=out, quick=args.quick,
            threads=args.threads, dense_checkpoint=Path(args.dense_checkpoint) if args.dense_checkpoint else None,
        )  # fmt: skip
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def retarget(args: argparse.Namespace, settings: DynaSettings) -> tuple[ResultDir, dict]:
    """``--retarget F``: the finished run's three models in ``--work``, re-targeted to ``F`` and compared."""
    if not (args.work and args.dense_checkpoint and Path(args.dense_checkpoint).is_file()):
        raise ConfigError("--retarget needs --work (a finished run's folder) and its --dense-checkpoint")
    base = f"retarget-{args.retarget:g}"
    tag = (base if args.tag == "default" else f"{args.tag}-{base}") + (f"-seed{args.seed}" if args.seed else "")
    out = ResultDir(Path(args.results_root), BENCHMARK, tag)
    return out, run_retarget(settings, target_mac_fraction=args.retarget, work=Path(args.work), out=out,
                             dense_checkpoint=Path(args.dense_checkpoint))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
