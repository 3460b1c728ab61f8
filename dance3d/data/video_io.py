"""Write and read real encoded video files with PyAV.

``write_video`` encodes ``(T, H, W, 3)`` uint8 frames as yuv420p (``libx264``, ``mpeg4``,
``libvpx``, ``ffv1``: encoders this PyAV build has); ``decode_video`` / ``read_video_frames``
decode them back. Every decoding failure (missing, empty, corrupt, truncated file, no video
stream, zero frames) is raised as :class:`BadVideoError`, whose message names the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dance3d.data.moving_digits import MovingDigits, MovingDigitsConfig
from dance3d.errors import ConfigError, DataError

_X264_OPTIONS = {"crf": "17", "preset": "fast"}  # near-transparent quality
_BIT_RATE = 8_000_000  # for the other encoders: generous, small clips stay close to the source


class BadVideoError(DataError):
    """A video file cannot be decoded; ``path`` and ``reason`` say which file and why.

    Constructed with the full message first so that it survives pickling and being re-raised
    from a DataLoader worker (which calls ``type(exc)(message)``).
    """

    def __init__(self, message: str, *, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason

    @classmethod
    def for_file(cls, path: str | Path, reason: str) -> BadVideoError:
        return cls(f"bad video {path}: {reason}", path=str(path), reason=reason)


@dataclass(frozen=True)
class DecodedVideo:
    """Frames picked from a decoded video, with the file's frame count and frame rate."""

    frames: np.ndarray  # (len(selected), H, W, 3) uint8
    num_frames: int  # frames in the file (the header's count when decoding stopped after the last kept frame)
    fps: float


def _check_encoder(codec: str) -> None:
    try:
        av.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError) as exc:
        raise ConfigError(f"codec {codec!r} has no encoder in this PyAV build ({exc})") from None


def write_video(path: str | Path, frames: np.ndarray, *, fps: float = 8.0, codec: str = "libx264") -> Path:
    """Encode ``frames`` ((T, H, W, 3) uint8 RGB, T >= 1, even H and W) to ``path``.

    The container follows the file extension (.mp4, .avi, .mkv, .webm...). Returns the path.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T>=1, H, W, 3), got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"height and width must be even for yuv420p encoding, got {height}x{width}")
    _check_encoder(codec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = _X264_OPTIONS
        else:
            stream.bit_rate = _BIT_RATE
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _header_frame_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """The frame count the container claims (0 when it says nothing usable)."""
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if container.duration and rate:
        return round(container.duration / av.time_base * float(rate))
    return 0


def _decode(
    path: str | Path, select: Callable[[int], Sequence[int]] | None, *, trust_header: bool
) -> tuple[dict[int, av.VideoFrame], list[int], int, float]:
    """Decode ``path`` up to its last selected frame: ``({index: frame}, selected, frame count, fps)``.

    With ``trust_header``, frames are picked from the header's frame count and decoding stops after the
    last one, holding only the picked frames; the count returned is then the header's, unless the
    video turned out shorter (then it is ``-1``, and the caller decodes again without the header).
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise BadVideoError.for_file(path, "no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        total = _header_frame_count(container, stream) if trust_header and select is not None else 0
        if total > 0:
            selected = list(select(total))
            wanted, last = set(selected), max(selected)
            kept = {}
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    kept[index] = frame
                if index == last:
                    return kept, selected, total, fps
            return kept, selected, -1, fps  # shorter than its header says
        decoded = dict(enumerate(container.decode(stream)))
        selected = list(range(len(decoded)) if select is None or not decoded else select(len(decoded)))
        return decoded, selected, len(decoded), fps


def decode_video(path: str | Path, *, select: Callable[[int], Sequence[int]] | None = None) -> DecodedVideo:
    """Decode ``path``; keep the frames at ``select(num_frames)`` (default: all).

    With ``select``, frames are picked from the container's frame count and decoding stops after the
    last picked frame, so a long video costs no more memory than the frames kept. When the header has
    no count, or the video ends before the count it claims, every frame is decoded (held in its
    compact YUV form; only the kept ones become RGB) and picked from the true count.

    Raises :class:`BadVideoError` naming the file for anything that is not a readable video
    with at least one frame.
    """
    try:
        frames, selected, total, fps = _decode(path, select, trust_header=True)
        if total < 0:
            frames, selected, total, fps = _decode(path, select, trust_header=False)
    except av.error.FileNotFoundError:
        raise BadVideoError.for_file(path, "file not found") from None
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadVideoError.for_file(path, f"cannot decode: {reason}") from None
    if not frames:
        raise BadVideoError.for_file(path, "zero frames")
    picked = np.stack([frames[i].to_ndarray(format="rgb24") for i in selected])
    return DecodedVideo(frames=picked, num_frames=total, fps=fps)


def read_video_frames(path: str | Path) -> np.ndarray:
    """All frames of a video file as (T, H, W, 3) uint8 RGB."""
    return decode_video(path).frames


def export_moving_digits(
    out_root: str | Path,
    split: str,
    count: int,
    config: MovingDigitsConfig | None = None,
    *,
    fps: float = 8.0,
    codec: str = "libx264",
) -> list[Path]:
    """Write the first ``count`` moving-digits clips as ``out_root/<direction>/<split>_<i>.mp4``.

    Only directions that occur get a folder. Read back with ``VideoFolderDataset(out_root,
    classes=MOTION_CLASSES)`` to keep the moving-digits label indices.
    """
    dataset = MovingDigits(split, config)
    if not 0 < count <= len(dataset):
        raise ConfigError(f"count must be in 1..{len(dataset)} for split {split!r}, got {count}")
    paths = []
    for index in range(count):
        sample = dataset[index]
        clip = (sample["clip"].permute(1, 2, 3, 0).numpy() * 255.0).round().astype(np.uint8)
        out = Path(out_root) / dataset.classes[sample["label"]] / f"{split}_{index}.mp4"
        paths.append(write_video(out, clip, fps=fps, codec=codec))
    return paths
