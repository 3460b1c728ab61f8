"""Re-time a finished dyna_forecast run's dense and co-pruned models at batch 1 and 32 on the current code.

    python benchmarks/dyna_forecast.py --threads 1 --backbone stformer-tiny --tag transformer --work W
    python benchmarks/dyna_forecast_latency.py --threads 1 --work W --dense-checkpoint W/dense/model.pt \
        --tag transformer

Nothing is trained: the run's dense checkpoint and ``W/coupled/model.pt`` (and ``W/data_only``,
``W/model_only`` where present) are loaded, the first --samples test samples timed at batch 1 the
way the benchmark does (models alternating inside every repeat), then one batch of the first --batch
samples: dense (as trained, and with channels-last weights; speed-ups are over the faster), each
co-pruned model in compact execution and, for SimVP and the ConvLSTM, the same with a dense
fallback measured on the first sample. Prints the speed-ups, realisation efficiencies
and throughputs; writes benchmarks/results/dyna_forecast_latency/<tag>/result.json. Logic:
dance3d/copruning/retime.py.

On a GPU, add --device cuda; --energy adds joules per sample at batch 1 and at --batch with the meter
`dance3d show-env` selects (NVML on an NVIDIA GPU, RAPL on a CPU where readable), idle power first:

    python benchmarks/dyna_forecast_latency.py --device cuda --energy --work W --dense-checkpoint W/dense/model.pt \
        --tag transformer-gpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dance3d.benchmark_results import ResultDir
from dance3d.copruning.retime import BENCHMARK, RetimeSettings, retime
from dance3d.errors import ConfigError

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="a finished dyna_forecast run's --work folder")
    parser.add_argument("--dense-checkpoint", required=True, help="that run's dense forecaster")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (also seeds the fallback's tiles)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N (auto: a CUDA GPU when there is one)")
    parser.add_argument(
        "--energy",
        action="store_true",
        help="also joules per sample, with the meter 'dance3d show-env' selects for the device",
    )
    parser.add_argument("--energy-window-s", type=float, default=2.0, help="meter window per model and batch size")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--results-root", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tag = args.tag + (f"-seed{args.seed}" if args.seed else "")
    out = ResultDir(Path(args.results_root), BENCHMARK, tag)
    try:
        settings = RetimeSettings(samples=args.samples, repeats=args.repeats, batch=args.batch, seed=args.seed,
                                  device=args.device, energy_window_s=args.energy_window_s)  # fmt: skip
        payload = retime(Path(args.work), Path(args.dense_checkpoint), settings, tag=out.tag,
                         meter="auto" if args.energy else None)  # fmt: skip
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(payload))
    print(f"saved {out.save(payload)}")
    return 0


def table(payload: dict) -> str:
    batch = payload["batch"]
    lines = [
        f"{'model':<26}{'latency ms':>11}{'MAC frac':>9}{'speed-up':>9}{'efficiency':>11}"
        f"{f'samples/s @{batch}':>17}{f'speed-up @{batch}':>16}"
    ]
    for name, ms in payload["latency_b1_ms"].items():
        throughput = payload["throughput_samples_per_s"][name]
        if name not in payload["mac_fraction"]:  # a dense baseline
            lines.append(f"{name:<26}{ms:>11.2f}{1.0:>9.3f}{'':>9}{'':>11}{throughput:>17.1f}{'':>16}")
            continue
        lines.append(
            f"{name:<26}{ms:>11.2f}{payload['mac_fraction'][name]:>9.3f}{payload['speedup_b1'][name]:>9.2f}"
            f"{payload['realisation_efficiency'][name]:>11.2f}{throughput:>17.1f}{payload['speedup_batch'][name]:>16.2f}"
        )
    lines += energy_lines(payload["energy"], batch)
    lines += [f"target {name}: {value}" for name, value in payload["targets"].items()]
    return "\n".join(lines)


def energy_lines(energy: dict, batch: int) -> list[str]:
    """Millijoules per sample and savings over the less costly dense model, or why energy was not measured."""
    if "energy_per_sample_mj" not in energy:
        return [f"energy: {energy['status']}"]
    per_sample, saving = energy["energy_per_sample_mj"], energy["saving"]
    lines = [f"energy ({energy['meter']}, idle {energy['idle_power_w']:.1f} W): "
             f"{'mJ/sample @1':>13}{'saving @1':>11}{f'mJ/sample @{batch}':>16}{f'saving @{batch}':>13}"]  # fmt: skip
    for name, value in per_sample["b1"].items():
        savings = [f"{saving[case][name]:.2f}" if name in saving[case] else "" for case in ("b1", "batch")]
        lines.append(f"  {name:<24}{value:>13.2f}{savings[0]:>11}{per_sample['batch'][name]:>16.2f}{savings[1]:>13}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
