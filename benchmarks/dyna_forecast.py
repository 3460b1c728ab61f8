"""Dyna-Pruner: coupled data-model masks vs single masks and static baselines at matched MACs.

    python benchmarks/dyna_forecast.py --threads 2 [--seed 0] [--tag default] [--quick] [--dense-checkpoint PATH]
    python benchmarks/dyna_forecast.py --threads 1 --backbone stformer-tiny --tag transformer   # the Transformer
    python benchmarks/dyna_forecast.py --threads 1 --backbone convlstm-tiny --tag convlstm      # the ConvLSTM
    python benchmarks/dyna_forecast.py --threads 1 --source traffic --backbone stformer-tiny --tag traffic-transformer

One seed: a dense simvp-tiny, stformer-tiny or convlstm-tiny (--backbone; trained here, or
--dense-checkpoint, whose backbone is used) on 64x64 fields of --source (storms: VIL radar, the
default; traffic: inflow and outflow counts; weather: t2m and z500; each with its own frame counts,
channels and calm mask); co-pruned to --target-mac-fraction with coupled, data-only and model-only
masks; uniform width pruning (SimVP: L1 channels; Transformer: attention and MLP widths; ConvLSTM:
cell hidden widths), a fixed centred tile crop and a random tile drop at the coupled model's MAC
fraction, all with the same fine-tuning budget; per-sample records (records.parquet), paired
Wilcoxon tests and paired bootstrap intervals against the coupled model, the Spearman of MAC
fraction vs calm fraction, figures (masks.png, mac_vs_mse.png), CPU latency at batch 1 of dense vs
co-pruned compact execution in the same run. Writes benchmarks/results/dyna_forecast/<tag>/result.json;
the tag defaults to "default" on storms and to the source's name on the others, whose tags must
start with it. CSI at VIL 74 is a storms score: on traffic and weather it is undefined and the
degradation target is MSE only.
Logic: dance3d/copruning/benchmark.py; design: docs/experiments/2026-12-07-dyna-forecast-design.md
(the Transformer's: docs/experiments/2026-12-07-dyna-forecast-transformer-design.md; the ConvLSTM's:
docs/experiments/2026-12-07-dyna-forecast-convlstm-design.md; the other sources':
docs/experiments/2026-12-07-dyna-forecast-sources-design.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path

import torch

from dance3d.benchmark_results import ResultDir
from dance3d.copruning.benchmark import BENCHMARK, DynaSettings, quick_settings, result_tag, run_benchmark
from dance3d.errors import ConfigError

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: the backbone's test size, tiny splits")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--tag", help="result folder name (default: 'default' on storms, else the source's name)")
    parser.add_argument("--results-root", default=str(RESULTS), help="results root (benchmarks/results)")
    parser.add_argument("--work", help="folder for the runs' checkpoints (default: a temporary one)")
    parser.add_argument(
        "--dense-checkpoint",
        help="a trained simvp, stformer or convlstm forecaster (skips dense training; sets the backbone)",
    )
    defaults = DynaSettings()
    for item in fields(DynaSettings):
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=type(getattr(defaults, item.name)), default=None)
    args = parser.parse_args()
    try:
        overrides = {f.name: getattr(args, f.name) for f in fields(DynaSettings) if getattr(args, f.name) is not None}
        settings = replace(defaults, **overrides)
        if args.quick:
            settings = quick_settings(settings)
        if args.dense_checkpoint and not Path(args.dense_checkpoint).exists():
            raise ConfigError(f"--dense-checkpoint {args.dense_checkpoint} does not exist")
        base_tag = result_tag(args.tag, settings.source)
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    tag = base_tag + (f"-seed{settings.seed}" if settings.seed else "") + ("-quick" if args.quick else "")
    out = ResultDir(Path(args.results_root), BENCHMARK, tag)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="dyna_forecast_"))
    try:
        dense = Path(args.dense_checkpoint) if args.dense_checkpoint else None
        payload = run_benchmark(
            settings, work=work, out=out, quick=args.quick, threads=args.threads, dense_checkpoint=dense
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(table(payload))
    print(f"saved {out.save(payload)}")
    return 0


def table(payload: dict) -> str:
    csi = f"CSI{payload['csi_level']}" if payload["csi_level"] else "CSI"
    lines = [
        f"{payload['settings']['source']} test split",
        f"{'method':<18}{'MAC frac':>9}{'MSE':>10}{csi:>7}{'vs coupled p':>14}",
    ]
    for name, row in payload["summary"].items():
        test = payload["paired_tests"].get(name)
        p = f"{test['wilcoxon_p']:.3g}" if test else "-"
        lines.append(f"{name:<18}{row['mac_fraction']:>9.3f}{row['mse']:>10.2f}{row['csi74']:>7.3f}{p:>14}")
    latency = payload["latency_b1_ms"]
    lines.append(
        f"batch-1 latency: dense {latency['dense']:.2f} ms, coupled compact {latency['coupled_compact']:.2f} ms "
        f"({payload['speedup_b1']:.2f}x); Spearman(MAC, calm) {payload['spearman_mac_vs_calm_fraction']:.2f}"
    )
    lines += [f"target {name}: {value}" for name, value in payload["targets"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
