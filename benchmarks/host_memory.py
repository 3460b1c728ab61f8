"""Steady-state CPU latency with glibc's default (freed blocks go back to the OS) vs freed memory retained.

Writes ``benchmarks/results/host_memory_cpu.json``. Usage::

    python benchmarks/host_memory.py [--threads 2] [--repeats 30]

``profiling.retain_freed_memory`` cannot be undone inside a process, so each setting runs in its own
subprocess, one after the other, on the same shapes: the dense ``tiny`` model and its stem conv alone
(the layer whose fresh output pages cost the most), median of ``--repeats`` timed calls after warm-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from profiling import collect_env

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [((16, 64, 64), 1), ((16, 64, 64), 8), ((16, 112, 112), 1), ((16, 112, 112), 8)]


def measure(retain: bool, threads: int, repeats: int) -> dict[str, float]:
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
    for clip, batch in CASES:
        x = torch.rand(batch, 3, *clip)
        for part, module in (("model", model), ("stem", model.stem)):
            with fast_conv_backend():
                timing = measure_latency(module, x, warmup=3, repeats=repeats)
            out[f"{'x'.join(map(str, clip))}_b{batch}_{part}"] = timing.median_ms
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--child", choices=("default", "retain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "retain", args.threads, args.repeats)))
        return 0
    started = time.perf_counter()
    runs = {}
    for mode in ("default", "retain"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--threads",
            str(args.threads),
            "--repeats",
            str(args.repeats),
        ]
        runs[mode] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    rows = [
        {"case": key, "default_ms": runs["default"][key], "retained_ms": runs["retain"][key],
         "speedup": runs["default"][key] / runs["retain"][key]}
        for key in runs["default"]
    ]  # fmt: skip
    print(f"{'case':<26}{'default ms':>12}{'retained ms':>13}{'speedup':>9}")
    for row in rows:
        print(f"{row['case']:<26}{row['default_ms']:>12.2f}{row['retained_ms']:>13.2f}{row['speedup']:>8.2f}x")
    payload = {
        "benchmark": "host_memory",
        "machine": {**collect_env(), "threads": args.threads},
        "repeats": args.repeats,
        "rows": rows,
        "total_s": time.perf_counter() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "host_memory_cpu.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
