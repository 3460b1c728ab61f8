"""``moving-digits``: action recognition on clips of scikit-learn's real handwritten digits.

The label is the **direction of motion** of one digit (8 compass directions), so no single frame
decides it: temporal information is required. The harder ``digit-direction`` task labels the
digit's identity too (80 classes: ``"3-up-left"``), so a model also needs the capacity to read
handwriting. Each clip varies in how much of it is redundant,
and records that in its metadata:

- ``static_frame_fraction``: share of frames that repeat the previous one (the digit pauses once,
  for a contiguous run of frames);
- ``actor_static_fraction``: share of frames in which the labelled digit stands where it stood in
  the previous frame (its pause, whatever moving clutter does; equals ``static_frame_fraction``
  without moving distractors);
- ``background_fraction``: share of pixel positions that are empty in every frame;
- ``num_distractors``: static digits that do not move (clutter, not signal);
- ``num_moving_distractors``: smaller, dimmer digits that move in directions of their own (clutter
  a model must tell from the actor: none unless ``max_moving_distractors`` is set);
- ``noise_std``: standard deviation of the additive Gaussian noise;
- ``digit_scale``: the labelled digit's side as a fraction of the frame's shorter side;
- ``redundancy``: ``0.5 * actor_static_fraction + 0.5 * background_fraction``, the single score
  that input-adaptive pruning is expected to track. It uses the labelled digit's own pause, not
  frame repeats: moving clutter hides frame repeats but not the actor's pause.

**Untrimmed clips** (``untrimmed=True``, at least 32 frames) model untrimmed video, where the
labelled event occupies a segment of the clip that differs per clip. The actor stands still except
for one out-and-back excursion along the labelled direction, lasting ``event_length`` frames from
``event_start``: from a short, fast burst that half- or quarter-rate sampling misses, to a slow
drift over the whole clip. The rest of the clip is idle (static distractors, noise, moving clutter
if enabled). Each untrimmed clip also records ``event_start``, ``event_length``,
``event_amplitude_px`` (the excursion's peak displacement), ``event_speed_px_per_frame`` (its path
length over its duration) and ``frames_needed``: how many of the clip's frames a tracker must see
so that successive seen frames are at most a quarter of the digit's side apart along the actor's
path, ``min(event_length, max(2, ceil(path_px / (side / 4))))`` — larger for longer and faster
events, never more than the event's own frames (a one-frame event is a single displaced frame).
It is the per-clip demand an input-adaptive controller should follow (see ``frames_needed``).

Clips are generated on the fly, deterministically from ``(seed, split, index)``. Digit sprites
are split disjointly between train, val and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.ndimage import zoom
from torch.utils.data import Dataset

from dance3d.errors import ConfigError

MOTION_CLASSES: tuple[str, ...] = (
    "right",
    "left",
    "up",
    "down",
    "up-right",
    "up-left",
    "down-right",
    "down-left",
)
_DIRECTIONS = {
    "right": (0.0, 1.0),
    "left": (0.0, -1.0),
    "up": (-1.0, 0.0),
    "down": (1.0, 0.0),
    "up-right": (-1.0, 1.0),
    "up-left": (-1.0, -1.0),
    "down-right": (1.0, 1.0),
    "down-left": (1.0, -1.0),
}
SPLITS = ("train", "val", "test")
TASKS = ("direction", "digit-direction")
CLIP_FACTORS: tuple[str, ...] = (
    "static_frame_fraction", "actor_static_fraction", "background_fraction", "num_distractors",
    "num_moving_distractors", "noise_std", "digit_scale",
)  # fmt: skip
"""The per-clip factors in every clip's metadata, besides ``redundancy`` (which summarises two of them)."""
EVENT_FACTORS: tuple[str, ...] = (
    "event_start", "event_length", "event_amplitude_px", "event_speed_px_per_frame", "frames_needed",
)  # fmt: skip
"""The extra per-clip factors of untrimmed clips."""
MIN_UNTRIMMED_FRAMES = 32


def task_classes(task: str) -> tuple[str, ...]:
    """Class names of a moving-digits task (label order)."""
    if task == "direction":
        return MOTION_CLASSES
    if task == "digit-direction":
        return tuple(f"{digit}-{motion}" for digit in range(10) for motion in MOTION_CLASSES)
    raise ConfigError(f"unknown moving-digits task {task!r}; choose from {', '.join(TASKS)}")


@dataclass(frozen=True)
class MovingDigitsConfig:
    """Shape and variability of the synthetic clips."""

    num_frames: int = 16
    height: int = 64
    width: int = 64
    num_train: int = 2400
    num_val: int = 400
    num_test: int = 800
    seed: int = 0
    max_static_fraction: float = 0.75
    max_distractors: int = 3
    max_noise_std: float = 0.12
    max_moving_distractors: int = 0
    min_digit_scale: float = 0.22  # sprite side as a fraction of the frame's shorter side
    max_digit_scale: float = 0.45
    task: str = "direction"
    untrimmed: bool = False  # one out-and-back event of per-clip length, position and speed; the rest idle
    min_event_frames: int = 1  # untrimmed only: the shortest event (1: a single displaced frame)

    def __post_init__(self) -> None:
        task_classes(self.task)  # raises for an unknown task
        if self.num_frames < 4:
            raise ValueError("num_frames must be at least 4 (motion needs frames)")
        if self.untrimmed and self.num_frames < MIN_UNTRIMMED_FRAMES:
            raise ValueError(f"untrimmed clips need num_frames >= {MIN_UNTRIMMED_FRAMES}, got {self.num_frames}")
        if self.untrimmed and not 1 <= self.min_event_frames <= self.num_frames:
            raise ValueError(f"min_event_frames must be in [1, num_frames], got {self.min_event_frames}")
        if min(self.height, self.width) < 16:
            raise ValueError("height and width must be at least 16 pixels")
        if not 0.0 <= self.max_static_fraction <= 0.9:
            raise ValueError("max_static_fraction must be in [0, 0.9]")
        if not 0.0 < self.min_digit_scale <= self.max_digit_scale <= 0.8:
            raise ValueError("need 0 < min_digit_scale <= max_digit_scale <= 0.8")
        if min(self.max_distractors, self.max_moving_distractors, self.max_noise_std) < 0:
            raise ValueError("max_distractors, max_moving_distractors and max_noise_std must be >= 0")

    def split_size(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: images (1797, 8, 8) in [0, 1] and their digit labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def _digit_images() -> np.ndarray:
    return _digits()[0]


def _sprite_indices(split: str) -> np.ndarray:
    """Disjoint sprite pools: 70% train, 10% val, 20% test, fixed order."""
    count = len(_digit_images())
    order = np.random.default_rng(12345).permutation(count)
    a, b = int(0.7 * count), int(0.8 * count)
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}[split]


def _render_sprite(image: np.ndarray, side: int, color: np.ndarray) -> np.ndarray:
    """Scale an 8x8 digit to ``side`` x ``side`` and tint it: (3, side, side)."""
    sprite = np.clip(zoom(image, side / 8.0, order=1), 0.0, 1.0)[:side, :side]
    return color[:, None, None] * sprite[None]


def _paste(frame: np.ndarray, sprite: np.ndarray, top: int, left: int) -> None:
    """Max-composite ``sprite`` into ``frame`` in place, clipped at the borders."""
    _, h, w = frame.shape
    _, sh, sw = sprite.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + sh, h), min(left + sw, w)
    if t1 <= t0 or l1 <= l0:
        return
    region = sprite[:, t0 - top : t1 - top, l0 - left : l1 - left]
    np.maximum(frame[:, t0:t1, l0:l1], region, out=frame[:, t0:t1, l0:l1])


def _motion_schedule(rng: np.random.Generator, num_frames: int, num_static: int) -> np.ndarray:
    """Cumulative step count per frame: the digit pauses once, for ``num_static`` consecutive frames.

    A pause is a contiguous run of repeated frames (as when a real object stops), so a temporal
    receptive field inside it sees no motion at all.
    """
    moving = np.ones(num_frames, dtype=np.int64)
    moving[0] = 0
    if num_static:
        start = int(rng.integers(1, num_frames - num_static + 1))
        moving[start : start + num_static] = 0
    return np.cumsum(moving)


def event_displacement(num_frames: int, start: int, length: int) -> np.ndarray:
    """Displacement of the actor per frame, as a fraction of its peak: 0 outside the event, a triangle
    (out, then back) inside ``[start, start + length)``; every event frame is displaced."""
    displacement = np.zeros(num_frames, dtype=np.float64)
    phase = (np.arange(1, length + 1) / (length + 1)).astype(np.float64)
    displacement[start : start + length] = 1.0 - np.abs(2.0 * phase - 1.0)
    return displacement


def frames_needed(path_px: float, side_px: int, length: int) -> int:
    """Frames a tracker must see so successive seen frames are at most ``side_px / 4`` apart along a
    path of ``path_px`` pixels: at least 2, capped by the event's ``length``."""
    return int(min(length, max(2, np.ceil(path_px / max(side_px / 4.0, 1.0)))))


def _draw_event(rng: np.random.Generator, config: MovingDigitsConfig, room_px: float) -> tuple[int, int, float]:
    """(start, length, amplitude_px) of an untrimmed clip's event: length log-uniform in
    ``[min_event_frames, num_frames]``, start uniform, peak displacement 25-55% of the free room."""
    T = config.num_frames
    log_length = rng.uniform(np.log(config.min_event_frames), np.log(T))
    length = int(np.clip(round(np.exp(log_length)), config.min_event_frames, T))
    start = int(rng.integers(0, T - length + 1))
    amplitude = float(rng.uniform(0.25, 0.55) * room_px)
    return start, length, amplitude


# Distractors: sprite side relative to the actor's size range, and the range of their colours
DISTRACTOR_SCALE, DISTRACTOR_COLOR = 0.8, (0.3, 0.8)  # static ones
MOVER_SCALE, MOVER_COLOR = 0.7, (0.25, 0.55)  # moving ones


def _random_sprite(rng: np.random.Generator, config: MovingDigitsConfig, pool: np.ndarray, *, short: int,
                   scale: float, color_range: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """A distractor sprite (3, side, side): a random digit of ``pool``, ``scale`` times a random actor size, tinted
    from ``color_range`` (draws size, colour, digit, in that order)."""
    side = int(round(rng.uniform(config.min_digit_scale, config.max_digit_scale) * short * scale))
    color = rng.uniform(*color_range, size=3).astype(np.float32)
    return _render_sprite(_digit_images()[rng.choice(pool)], side, color)


def _add_moving_distractors(clean: np.ndarray, config: MovingDigitsConfig, split: str, index: int,
                            pool: np.ndarray) -> int:  # fmt: skip
    """Paste up to ``max_moving_distractors`` smaller, dimmer digits, each moving steadily in a random
    direction, into ``clean`` (3, T, H, W) in place; returns how many.

    They draw from a random stream of their own, so clips without them are the same as before.
    """
    if not config.max_moving_distractors:
        return 0
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index, 1])
    _, T, H, W = clean.shape
    short = min(H, W)
    count = int(rng.integers(0, config.max_moving_distractors + 1))
    for _ in range(count):
        sprite = _random_sprite(rng, config, pool, short=short, scale=MOVER_SCALE, color_range=MOVER_COLOR)
        side = sprite.shape[1]
        dy, dx = _DIRECTIONS[MOTION_CLASSES[int(rng.integers(len(MOTION_CLASSES)))]]
        travel = rng.uniform(0.25, 0.55) * (short - side)
        top0, left0 = rng.uniform(0, H - side), rng.uniform(0, W - side)
        for t in range(T):
            step = travel * t / (T - 1)
            top = int(round(np.clip(top0 + dy * step, 0, H - side)))
            left = int(round(np.clip(left0 + dx * step, 0, W - side)))
            _paste(clean[:, t], sprite, top, left)
    return count


def generate_clip(config: MovingDigitsConfig, split: str, index: int) -> tuple[np.ndarray, int, dict]:
    """One clip ``(3, T, H, W)`` float32 in [0, 1], its label and its redundancy metadata."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    T, H, W = config.num_frames, config.height, config.width
    images = _digit_images()
    pool = _sprite_indices(split)

    label = int(rng.integers(len(MOTION_CLASSES)))
    dy, dx = _DIRECTIONS[MOTION_CLASSES[label]]
    norm = float(np.hypot(dy, dx))
    dy, dx = dy / norm, dx / norm

    short = min(H, W)
    side = int(round(rng.uniform(config.min_digit_scale, config.max_digit_scale) * short))
    room_y, room_x = H - side, W - side
    room = min(room_y if dy else np.inf, room_x if dx else np.inf)
    event: dict[str, Any] = {}
    if config.untrimmed:
        event_start, event_length, travel = _draw_event(rng, config, room)
        scale, offsets = travel, event_displacement(T, event_start, event_length)
        path_px = 2.0 * travel
        event = {
            "event_start": event_start,
            "event_length": event_length,
            "event_amplitude_px": travel,
            "event_speed_px_per_frame": path_px / (event_length + 1),
            "frames_needed": frames_needed(path_px, side, event_length),
        }
    else:
        max_static = int(np.floor(config.max_static_fraction * (T - 1)))
        num_static = int(rng.integers(0, max_static + 1))
        steps = _motion_schedule(rng, T, num_static)
        # Travel a visible distance: 25-55% of the free room along the motion.
        travel = rng.uniform(0.25, 0.55) * room
        scale, offsets = travel / max(int(steps[-1]), 1), steps  # pixels per step, steps per frame
    span_y, span_x = abs(dy) * travel, abs(dx) * travel
    start_y = rng.uniform(0, room_y - span_y) + (span_y if dy < 0 else 0.0)
    start_x = rng.uniform(0, room_x - span_x) + (span_x if dx < 0 else 0.0)

    color = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    sprite_index = rng.choice(pool)
    actor = _render_sprite(images[sprite_index], side, color)
    if config.task == "digit-direction":
        label = int(_digits()[1][sprite_index]) * len(MOTION_CLASSES) + label
    num_distractors = int(rng.integers(0, config.max_distractors + 1))
    background = np.zeros((3, H, W), dtype=np.float32)
    for _ in range(num_distractors):
        sprite = _random_sprite(rng, config, pool, short=short, scale=DISTRACTOR_SCALE, color_range=DISTRACTOR_COLOR)
        d_side = sprite.shape[1]
        _paste(background, sprite, int(rng.integers(0, H - d_side)), int(rng.integers(0, W - d_side)))

    clean = np.repeat(background[:, None], T, axis=1)
    positions = [(int(round(start_y + dy * scale * o)), int(round(start_x + dx * scale * o))) for o in offsets]
    for t, (top, left) in enumerate(positions):
        _paste(clean[:, t], actor, top, left)

    num_movers = _add_moving_distractors(clean, config, split, index, pool)

    noise_std = float(rng.uniform(0.0, config.max_noise_std))
    clip = clean + rng.normal(0.0, noise_std, size=clean.shape).astype(np.float32) if noise_std else clean
    clip = np.clip(clip, 0.0, 1.0).astype(np.float32)

    # Measured on the rendering: sub-pixel motion can round to a repeated frame too.
    static_fraction = float(np.mean([np.array_equal(clean[:, t], clean[:, t - 1]) for t in range(1, T)]))
    background_fraction = float((clean.max(axis=(0, 1)) < 0.05).mean())
    actor_static = float(np.mean([positions[t] == positions[t - 1] for t in range(1, T)]))
    meta = {
        "static_frame_fraction": static_fraction,
        "actor_static_fraction": actor_static,
        "background_fraction": background_fraction,
        "num_distractors": num_distractors,
        "num_moving_distractors": num_movers,
        "noise_std": noise_std,
        "digit_scale": side / short,
        "redundancy": 0.5 * actor_static + 0.5 * background_fraction,
        **event,
    }
    return clip, label, meta


class MovingDigits(Dataset):
    """Map-style dataset of ``{"clip": (3,T,H,W) float tensor, "label": int, "meta": dict}``."""

    def __init__(self, split: str = "train", config: MovingDigitsConfig | None = None) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        self.split = split
        self.config = config or MovingDigitsConfig()
        self.classes = task_classes(self.config.task)

    def __len__(self) -> int:
        return self.config.split_size(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        clip, label, meta = generate_clip(self.config, self.split, index)
        return {"clip": torch.from_numpy(clip), "label": label, "meta": meta}
