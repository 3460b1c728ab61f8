"""Steady-state CPU latency with glibc's default (freed blocks go back to the OS) vs freed memory retained.

Writes ``benchmarks/results/host_memory/<tag>/result.json`` (tag ``default`` unless ``--tag``; a ``--quick``
run appends ``-quick``). Usage::

    python benchmarks/host_memory.py [--threads 2] [--repeats 30] [--quick]

``profiling.retain_freed_memory`` cannot be undone inside a process, so each setting runs in its own
subprocess, one after the other, on the same shapes: the dense ``tiny`` model and its stem conv alone
(the layer whose fresh output pages cost the most), median of ``--repeats`` timed calls after warm-up.
``--quick`` is a smoke run (the smallest case, 3 repeats): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dance3d.benchmark_results import save_result
from profiling import collect_env

BENCHMARK = "host_memory"
RESULTS = Path(__file__).resolve().parent / "results"
CASES = [((16, 64, 64), 1), ((16, 64, 64), 8), ((16, 112, 112), 1), ((16, 112, 112), 8)]
QUICK_CASES = [((8, 32, 32), 1)]


def measure(retain: bool, threads: int, repeats: int, cases: list) -> dict[str, float]:
    """In this process: median ms per case and part; ``retain`` first calls retain_freed_memory()."""
    import torch

    from dance3d.dynamic.compact_backend import fast_conv_backend
    from dance3d.models import create_model
    from profiling import measure_latency, retain_freed_memory

    torch.set_num_threads(threads)
    if retain and not retain_freed_memory():
        raise SystemExit("retain_freed_memory() is not supported by this C library (glibc needed)")
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=8).eval()
    out = {}
    for clip, batch in cases:
        x = torch.rand(batch, 3, *clip)
        for part, module in (("model", model), ("stem", model.stem)):
            with fast_conv_backend():
                timing = measure_latency(module, x, warmup=3, repeats=repeats)
            out[f"{'x'.join(map(str, clip))}_b{batch}_{part}"] = timing.median_ms
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="smoke run: one small case, 3 repeats (tag gets -quick)")
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", default="default", help="the run's name (default: %(default)s)")
    parser.add_argument("--child", choices=("default", "retain"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = QUICK_CASES if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    if args.child:
        print(json.dumps(measure(args.child == "retain", args.threads, repeats, cases)))
        return 0
    started = time.perf_counter()
    runs, timings_s = {}, {}
    for mode in ("default", "retain"):
        cmd = [sys.executable, __file__, "--child", mode, "--threads", str(args.threads), "--repeats", str(repeats)]
        cmd += ["--quick"] if args.quick else []
        mode_started = time.perf_counter()
        child = subprocess.run(cmd, capture_output=True, text=True)
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"error: the {mode!r} measurement failed (exit {child.returncode}): {last}")
        runs[mode] = json.loads(child.stdout)
        timings_s[mode] = time.perf_counter() - mode_started
    rows = [
        {"case": key, "default_ms": runs["default"][key], "retained_ms": runs["retain"][key],
         "speedup": runs["default"][key] / runs["retain"][key]}
        for key in runs["default"]
    ]  # fmt: skip
    print(f"{'case':<26}{'default ms':>12}{'retained ms':>13}{'speedup':>9}")
    for row in rows:
        print(f"{row['case']:<26}{row['default_ms']:>12.2f}{row['retained_ms']:>13.2f}{row['speedup']:>8.2f}x")
    timings_s["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": args.tag + ("-quick" if args.quick else ""),  # a smoke run never replaces a real result
        "seed": 0,  # the model's weights and the clips (torch.manual_seed(0))
        "quick": args.quick,
        "settings": {
            "threads": args.threads,
            "repeats": repeats,
            "model": "tiny",
            "cases": [{"clip": list(clip), "batch": batch} for clip, batch in cases],
        },  # fmt: skip
        "machine": {**collect_env(), "threads": args.threads},
        "timings_s": timings_s,
        "targets": {},
        "repeats": repeats,
        "rows": rows,
    }
    print(f"wrote {save_result(payload, args.results_root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
