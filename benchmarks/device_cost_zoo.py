"""The cost side of device-aware DANCE on a zoo model with random weights: block cost table vs the whole model's
compact latency, and counted MACs vs measured time per cut axis (frames, channels, tiles, all three), batch 1.

Runs :func:`dance3d.dance.device_cost_zoo.run_zoo_cost` (settings ``SETTINGS["default"]``: r2plus1d_18 at
8x112x112 on one thread, or ``["quick"]`` with ``--quick``: tiny, a small clip, two repeats) and writes
``benchmarks/results/device_cost_zoo/<tag>/``: ``result.json`` and ``macs_vs_latency.png``; the random-weight
checkpoint and the cost table (``cost_table.json``) go to the work directory. Usage::

    taskset -c 0 python benchmarks/device_cost_zoo.py [--model r2plus1d_18] [--clip T H W] [--threads 1]
        [--device cuda] [--energy] [--work-dir runs/bench-device-cost-zoo] [--tag NAME] [--seed N] [--quick]

The tag is ``--tag`` (``default``), suffixed ``-<model>`` for a model other than r2plus1d_18, ``-cuda`` on a
GPU, ``-seedN`` for ``--seed N`` > 0 and ``-quick`` for a smoke run, whose numbers mean nothing. ``--energy``
measures joules per table entry with the meter ``dance3d show-env`` selects (NVML on a GPU); without a meter
the result says why.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import dance3d.loading  # noqa: F401 - registers every checkpoint kind
from dance3d.benchmark_results import ResultDir, save_result
from dance3d.dance.device_cost_measure import format_check
from dance3d.dance.device_cost_zoo import SETTINGS, format_cuts, plot_cuts, run_zoo_cost, settings_record
from dance3d.errors import ConfigError, Dance3dError
from dance3d.models import model_info
from dance3d.training.trainer import resolve_device
from profiling import collect_env
from profiling.energy import resolve_meter

BENCHMARK = "device_cost_zoo"
DEFAULT_MODEL = SETTINGS["default"].model  # the tag names any other model
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help=f"zoo model, random weights (default {DEFAULT_MODEL}; tiny with --quick)")
    parser.add_argument("--clip", nargs="+", metavar="N", help="clip frames, height, width (default 8 112 112)")
    parser.add_argument("--threads", default="1", help="torch threads for timing (default: %(default)s)")
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:N (default: %(default)s; the tag names others)"
    )
    parser.add_argument(
        "--energy",
        action="store_true",
        help="joules per table entry too, with the meter 'dance3d show-env' selects for the device",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench-device-cost-zoo"), help="checkpoint, table")
    parser.add_argument("--quick", action="store_true", help="smoke run (SETTINGS['quick']); numbers mean nothing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, clip and masks; tag -seedN if not 0")
    parser.add_argument("--tag", default="default", help="names this run's result folder")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    return parser.parse_args(argv)


def _positive_ints(values: list[str], *, option: str, count: int) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in values)
    except ValueError:
        numbers = ()
    if len(numbers) != count or min(numbers) < 1:
        wanted = f"{count} positive integers" if count > 1 else "a positive integer"
        raise ConfigError(f"{option} {' '.join(values)}: give {wanted}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        settings = SETTINGS["quick" if args.quick else "default"]
        model = args.model or settings.model
        model_info(model)  # an unknown name fails before anything is written
        (threads,) = _positive_ints([args.threads], option="--threads", count=1)
        clip = settings.clip if args.clip is None else _positive_ints(args.clip, option="--clip", count=3)
        device = resolve_device(args.device)
        settings = replace(settings, model=model, clip=clip, seed=args.seed,
                           runtime=replace(settings.runtime, threads=threads, device=str(device)))  # fmt: skip
        tag = (args.tag + (f"-{model}" if model != DEFAULT_MODEL else "")
               + (f"-{device.type}" if device.type != "cpu" else "")
               + (f"-seed{args.seed}" if args.seed else "") + ("-quick" if args.quick else ""))  # fmt: skip
        out = ResultDir(args.results_root, BENCHMARK, tag)
        meter, why = resolve_meter("auto", device) if args.energy else (None, "")
        why = f"unavailable: {why}" if args.energy else "not requested"
        try:
            outcome = run_zoo_cost(settings, work_dir=args.work_dir / tag, meter=meter, energy_status=why)
        finally:
            if meter is not None:
                meter.close()
    except Dance3dError as error:
        print(f"{BENCHMARK}: error: {error}", file=sys.stderr)
        return 2
    outcome["timings_s"]["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": tag,
        "seed": args.seed,
        "quick": args.quick,
        "settings": {**settings_record(settings), "batch_size": 1, "weights": "random"},
        "machine": collect_env(),
        **outcome,
    }
    clip_text = "x".join(map(str, settings.clip))
    table = outcome["table"]
    print(f"{settings.model} at {clip_text}, batch 1, {threads} thread(s): {table['entries']} table entries, "
          f"dense {table['dense_ms']:.2f} ms")  # fmt: skip
    print(format_check(payload["table_check"]))
    print(format_cuts(payload["cuts"]))
    if payload["skipped_cuts"]:
        print("cut nothing on this model and clip (skipped):", ", ".join(payload["skipped_cuts"]))
    print("targets:", payload["targets"])
    plot_cuts(payload["cuts"], out.file("macs_vs_latency.png"), title=f"{settings.model} {clip_text}, batch 1")
    print(f"wrote {save_result(payload, args.results_root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
