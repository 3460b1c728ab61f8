"""Host memory of reading one clip from a long video: decoding stops after the last sampled frame vs decoding it whole.

Writes ``benchmarks/results/decode_memory/<tag>/result.json``. Usage::

    python benchmarks/decode_memory.py [--frames 600] [--size 640x480] [--quick] [--tag default]

Encodes a ``--frames``-frame test video (libx264), then reads 16 frames from it the way
``VideoFolderDataset`` samples them (``uniform`` over the whole video, ``center`` window), each way in
a fresh subprocess: ``whole`` decodes every frame and keeps them (in YUV) before picking, as
``decode_video`` did before; ``stop_early`` is today's ``decode_video``, which picks frames from the
container's frame count and holds only those. Reported: peak resident memory added by the read (MB)
and its wall time, and the ratio stop_early / whole of each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = ("whole", "stop_early")
SAMPLINGS = ("uniform", "center")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    """Start the peak-RSS mark (VmHWM) afresh, so imports before the read do not count (Linux)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_mb() -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def measure(path: str, way: str, sampling: str) -> dict[str, float]:
    """In this process: peak RSS added (MB) and wall time (s) of reading one 16-frame clip."""
    import numpy as np

    from dance3d.data import video_io
    from dance3d.data.video_folder import VideoFolderConfig, frame_indices

    config = VideoFolderConfig(num_frames=16, sampling=sampling)
    select = lambda total: frame_indices(total, config, np.random.default_rng(0))  # noqa: E731
    _reset_peak()
    before = _rss_mb()
    started = time.perf_counter()
    if way == "whole":
        frames, selected, _, _ = video_io._decode(path, select, trust_header=False)
        clip = np.stack([frames[i].to_ndarray(format="rgb24") for i in selected])
    else:
        clip = video_io.decode_video(path, select=select).frames
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    assert clip.shape[0] == 16
    return {"added_mb": peak - before, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600, help="frames in the test video")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the test video")
    parser.add_argument("--quick", action="store_true", help="150 frames of 320x240")
    parser.add_argument("--tag", default="default", help="result folder name (a --quick run adds -quick)")
    parser.add_argument("--results-root", default=str(RESULTS), help="where <benchmark>/<tag>/ is written")
    parser.add_argument("--measure", nargs=3, metavar=("PATH", "WAY", "SAMPLING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    import numpy as np

    from dance3d.benchmark_results import save_result
    from dance3d.data.video_io import write_video
    from profiling import collect_env

    frames, (width, height) = args.frames, map(int, args.size.split("x"))
    if args.quick:
        frames, width, height = 150, 320, 240
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(frames, height // 8, width // 8, 3), dtype=np.uint8)
    video = video.repeat(8, axis=1).repeat(8, axis=2)  # blocky noise: a realistic bitrate, quick to encode
    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_video(Path(tmp) / "long.mp4", video, fps=30.0))
        rows = {}
        for sampling in SAMPLINGS:
            for way in WAYS:
                command = [sys.executable, __file__, "--measure", path, way, sampling]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                rows[f"{sampling}/{way}"] = json.loads(out.strip().splitlines()[-1])
    print(f"{frames} frames of {width}x{height}, one 16-frame clip per read")
    print(f"{'sampling':<9} {'way':<11} {'added MB':>9} {'seconds':>8} {'MB ratio':>9} {'time ratio':>10}")
    ratios = {}
    for sampling in SAMPLINGS:
        whole = rows[f"{sampling}/whole"]
        for way in WAYS:
            row = rows[f"{sampling}/{way}"]
            mb_ratio = row["added_mb"] / max(whole["added_mb"], 1e-9)
            time_ratio = row["seconds"] / whole["seconds"]
            ratios[f"{sampling}/{way}"] = {"mb_ratio": mb_ratio, "time_ratio": time_ratio}
            print(f"{sampling:<9} {way:<11} {row['added_mb']:>9.1f} {row['seconds']:>8.3f} "
                  f"{mb_ratio:>9.2f} {time_ratio:>10.2f}")  # fmt: skip
    payload = {
        "benchmark": "decode_memory",
        "tag": args.tag + ("-quick" if args.quick else ""),
        "seed": 0,
        "quick": bool(args.quick),
        "settings": {"frames": frames, "width": width, "height": height, "clip_frames": 16},
        "machine": collect_env(),
        "timings_s": {key: row["seconds"] for key, row in rows.items()},
        "rows": rows,
        "ratios": ratios,
        "targets": {
            f"{sampling}_stop_early_under_half_the_memory": ratios[f"{sampling}/stop_early"]["mb_ratio"] < 0.5
            for sampling in SAMPLINGS
        },
    }
    print(f"wrote {save_result(payload, args.results_root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
