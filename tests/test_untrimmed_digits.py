"""Untrimmed moving-digits clips: event metadata, frames needed, determinism, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from dance3d.data.moving_digits import (
    EVENT_FACTORS,
    MovingDigitsConfig,
    event_displacement,
    frames_needed,
    generate_clip,
)
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError

CLEAN = MovingDigitsConfig(
    num_frames=32, height=32, width=32, untrimmed=True, max_noise_std=0.0, max_distractors=0, num_train=40
)


def test_event_displacement_is_zero_outside_and_positive_inside_the_event() -> None:
    d = event_displacement(10, 3, 4)
    assert np.all(d[:3] == 0) and np.all(d[7:] == 0)
    assert np.all(d[3:7] > 0) and d.max() <= 1.0
    np.testing.assert_allclose(d[3:7], d[3:7][::-1])  # out and back: symmetric
    assert event_displacement(5, 2, 1)[2] == 1.0  # a one-frame event is one frame at the peak


@pytest.mark.parametrize("index", range(12))
def test_event_metadata_matches_the_rendering(index: int) -> None:
    clip, _, meta = generate_clip(CLEAN, "train", index)
    start, length = meta["event_start"], meta["event_length"]
    rest = clip[:, 0] if start > 0 else clip[:, -1]
    outside = [t for t in range(32) if not start <= t < start + length]
    assert outside, "an event never fills the whole clip and its rest frame"
    for t in outside:  # the actor stands still outside its event
        np.testing.assert_array_equal(clip[:, t], rest)
    peak = start + length // 2  # the most displaced frame
    assert not np.array_equal(clip[:, peak], rest)
    assert meta["actor_static_fraction"] >= (len(outside) - 2) / 31  # still before and after the event


def test_events_vary_per_clip_from_bursts_to_drifts() -> None:
    metas = [generate_clip(CLEAN, "train", i)[2] for i in range(40)]
    lengths = np.array([m["event_length"] for m in metas])
    assert set(EVENT_FACTORS) <= set(metas[0])
    assert lengths.min() <= 3 and lengths.max() >= 20
    assert len({m["event_start"] for m in metas}) > 10
    speeds = np.array([m["event_speed_px_per_frame"] for m in metas])
    assert speeds[lengths <= 3].mean() > 2 * speeds[lengths >= 16].mean()  # bursts are fast


def test_frames_needed_is_monotone_in_event_length_and_speed() -> None:
    side = 12
    for length in range(1, 32):
        assert frames_needed(20.0, side, length) <= frames_needed(20.0, side, length + 1)
    for path in np.linspace(1.0, 60.0, 30):
        assert frames_needed(path, side, 32) <= frames_needed(path + 2.0, side, 32)
    assert frames_needed(60.0, side, 4) == 4  # capped by the event's own frames
    assert frames_needed(0.5, side, 32) == 2
    assert frames_needed(30.0, side, 32) == 10  # 30 px at 3 px per seen frame


def test_untrimmed_clips_are_deterministic_by_seed_split_and_index() -> None:
    config = MovingDigitsConfig(num_frames=32, height=32, width=32, untrimmed=True)
    a, la, ma = generate_clip(config, "val", 5)
    b, lb, mb = generate_clip(config, "val", 5)
    np.testing.assert_array_equal(a, b)
    assert (la, ma) == (lb, mb)
    c, _, mc = generate_clip(config, "test", 5)
    assert not np.array_equal(a, c) or ma != mc


def test_untrimmed_mode_needs_long_clips_and_valid_event_lengths() -> None:
    with pytest.raises(ValueError, match="num_frames >= 32"):
        MovingDigitsConfig(num_frames=16, untrimmed=True)
    with pytest.raises(ValueError, match="min_event_frames"):
        MovingDigitsConfig(num_frames=32, untrimmed=True, min_event_frames=0)
    with pytest.raises(ConfigError, match="num_frames >= 32"):
        DataConfig(num_frames=16, untrimmed=True)


def test_data_config_builds_untrimmed_clips() -> None:
    dataset = build_dataset(DataConfig(num_frames=32, height=32, width=32, untrimmed=True, num_test=4), "test")
    sample = dataset[0]
    assert tuple(sample["clip"].shape) == (3, 32, 32, 32)
    assert "frames_needed" in sample["meta"]


def test_redundancy_is_the_actors_pause_not_frame_repeats() -> None:
    config = MovingDigitsConfig(height=32, width=32, max_moving_distractors=3, num_train=30)
    for i in range(30):
        _, _, meta = generate_clip(config, "train", i)
        expected = 0.5 * meta["actor_static_fraction"] + 0.5 * meta["background_fraction"]
        assert meta["redundancy"] == pytest.approx(expected)
