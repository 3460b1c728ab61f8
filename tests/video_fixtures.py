"""Tiny real video files for tests: good ones, and every kind of bad one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dance3d.data.video_io import write_video

STEP = 12  # frame t is uniform grey 10 + STEP * t, so a decoded frame tells its index


def ramp_frames(num_frames: int, height: int = 32, width: int = 32) -> np.ndarray:
    """(T, H, W, 3) uint8 frames whose grey level encodes the frame index."""
    levels = (10 + STEP * np.arange(num_frames)).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def frame_index(clip_frame: np.ndarray) -> int:
    """Recover the source frame index from a decoded (C, H, W) frame in [0, 1]."""
    return int(round((float(clip_frame.mean()) * 255.0 - 10) / STEP))


def make_good_folder(root: Path) -> Path:
    """cat: 16 and 12 frames; dog: 16 and 6 frames; fish: 10 frames of 48x32 (non-square)."""
    write_video(root / "cat" / "a0.mp4", ramp_frames(16))
    write_video(root / "cat" / "a1.avi", ramp_frames(12), codec="mpeg4")
    write_video(root / "dog" / "b0.mkv", ramp_frames(16))
    write_video(root / "dog" / "b1.mp4", ramp_frames(6))
    write_video(root / "fish" / "c0.mp4", ramp_frames(10, height=32, width=48))
    return root


def write_empty_video(path: Path, *, with_stream: bool) -> Path:
    """A container with no frames: an .avi keeps its (empty) video stream, an .mp4 has none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4" if with_stream else "libx264", rate=Fraction(8))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    return path


def make_bad_file(path: Path, kind: str) -> Path:
    """Write one bad video of ``kind``: zero-byte, text, truncated, zero-frames, no-stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n")
    elif kind == "truncated":
        data = write_video(path, ramp_frames(16)).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind in ("zero-frames", "no-stream"):
        write_empty_video(path, with_stream=kind == "zero-frames")
    else:
        raise ValueError(kind)
    return path
