import numpy as np
import pytest
import torch

from dance3d.data.moving_digits import (
    CLIP_FACTORS,
    MOTION_CLASSES,
    MovingDigits,
    MovingDigitsConfig,
    _motion_schedule,
    _sprite_indices,
)
from dance3d.errors import ConfigError

SMALL = MovingDigitsConfig(num_frames=8, height=32, width=32, num_train=64, num_val=16, num_test=200)


def test_clip_shape_and_range():
    sample = MovingDigits("train", SMALL)[0]
    assert sample["clip"].shape == (3, 8, 32, 32)
    assert sample["clip"].dtype == torch.float32
    assert 0.0 <= float(sample["clip"].min()) and float(sample["clip"].max()) <= 1.0
    assert 0 <= sample["label"] < len(MOTION_CLASSES)


def test_deterministic_by_seed_and_index():
    a, b = MovingDigits("test", SMALL)[5], MovingDigits("test", SMALL)[5]
    assert torch.equal(a["clip"], b["clip"]) and a["meta"] == b["meta"]
    other_seed = MovingDigits("test", MovingDigitsConfig(**{**SMALL.__dict__, "seed": 1}))[5]
    assert not torch.equal(a["clip"], other_seed["clip"])
    assert not torch.equal(a["clip"], MovingDigits("train", SMALL)[5]["clip"])


def test_splits_use_disjoint_sprites():
    pools = [set(_sprite_indices(s).tolist()) for s in ("train", "val", "test")]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])
    assert sum(map(len, pools)) == 1797


def _actor_centroids(config: MovingDigitsConfig, index: int):
    clip = MovingDigits("test", config)[index]
    frames = clip["clip"].numpy().max(axis=0)  # (T, H, W)
    moving = np.abs(np.diff(frames, axis=0)).sum(axis=0) > 0  # pixels that ever change
    ys, xs = np.nonzero(moving)
    weights = frames[:, moving]
    cy = (weights * ys).sum(1) / np.maximum(weights.sum(1), 1e-6)
    cx = (weights * xs).sum(1) / np.maximum(weights.sum(1), 1e-6)
    return clip, cy, cx


def test_label_is_the_direction_of_motion():
    config = MovingDigitsConfig(**{**SMALL.__dict__, "max_noise_std": 0.0, "max_distractors": 0})
    checked = 0
    for index in range(40):
        clip, cy, cx = _actor_centroids(config, index)
        dy, dx = cy[-1] - cy[0], cx[-1] - cx[0]
        name = MOTION_CLASSES[clip["label"]]
        assert ("up" in name) == (dy < -0.5) and ("down" in name) == (dy > 0.5), (name, dy)
        assert ("left" in name) == (dx < -0.5) and ("right" in name) == (dx > 0.5), (name, dx)
        checked += 1
    assert checked == 40


def test_recorded_static_fraction_matches_duplicate_frames():
    config = MovingDigitsConfig(**{**SMALL.__dict__, "max_noise_std": 0.0})
    for index in range(20):
        sample = MovingDigits("test", config)[index]
        clip = sample["clip"]
        duplicates = sum(torch.equal(clip[:, t], clip[:, t - 1]) for t in range(1, clip.shape[1]))
        assert duplicates / (clip.shape[1] - 1) == pytest.approx(sample["meta"]["static_frame_fraction"])


def test_redundancy_varies_widely_across_clips():
    metas = [MovingDigits("test", SMALL)[i]["meta"] for i in range(200)]
    redundancy = np.array([m["redundancy"] for m in metas])
    static = np.array([m["static_frame_fraction"] for m in metas])
    assert np.percentile(redundancy, 90) - np.percentile(redundancy, 10) > 0.2
    assert static.min() == 0.0 and static.max() >= 0.5
    assert {m["num_distractors"] for m in metas} == {0, 1, 2, 3}
    assert all(set(m) == {*CLIP_FACTORS, "redundancy"} for m in metas)  # one list names the factors everywhere
    labels = [MovingDigits("test", SMALL)[i]["label"] for i in range(200)]
    assert set(labels) == set(range(len(MOTION_CLASSES)))


def test_bad_split_and_config():
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        MovingDigits("dev", SMALL)
    with pytest.raises(ValueError, match="num_frames must be at least 4"):
        MovingDigitsConfig(num_frames=2)
    with pytest.raises(IndexError):
        MovingDigits("val", SMALL)[16]


@pytest.mark.parametrize("num_static", [0, 1, 5, 11])
def test_pause_is_one_contiguous_run_of_repeated_frames(num_static):
    for seed in range(20):
        steps = _motion_schedule(np.random.default_rng(seed), 16, num_static)
        paused = np.flatnonzero(np.diff(steps) == 0) + 1
        assert len(paused) == num_static
        if num_static:
            assert np.array_equal(paused, np.arange(paused[0], paused[0] + num_static))


def test_digit_direction_task_labels_digit_and_motion_of_the_same_clips():
    from dance3d.data.moving_digits import MOTION_CLASSES, task_classes

    small = {"num_frames": 8, "height": 32, "width": 32, "num_test": 40}
    plain = MovingDigits("test", MovingDigitsConfig(**small))
    harder = MovingDigits("test", MovingDigitsConfig(**small, task="digit-direction"))
    assert len(harder.classes) == 80 and harder.classes == task_classes("digit-direction")
    digits = set()
    for i in range(40):
        a, b = plain[i], harder[i]
        assert torch.equal(a["clip"], b["clip"])  # same clips; only the label space differs
        assert b["label"] % len(MOTION_CLASSES) == a["label"]
        digits.add(b["label"] // len(MOTION_CLASSES))
    assert len(digits) > 3
    with pytest.raises(ConfigError, match="unknown moving-digits task"):
        MovingDigitsConfig(task="colour")


def test_noise_range_is_a_data_setting():
    from dance3d.config import load_config
    from dance3d.data.registry import DataConfig, build_dataset
    from dance3d.training.trainer import RunConfig

    small = {"num_frames": 8, "height": 32, "width": 32, "num_train": 40}
    quiet = build_dataset(DataConfig(**small, max_noise_std=0.0), "train")
    noisy = build_dataset(DataConfig(**small, max_noise_std=0.5), "train")
    assert all(quiet[i]["meta"]["noise_std"] == 0.0 for i in range(len(quiet)))
    noise = [noisy[i]["meta"]["noise_std"] for i in range(len(noisy))]
    assert max(noise) > 0.3 and all(0.0 <= n <= 0.5 for n in noise)
    assert load_config(RunConfig, overrides=["data.max_noise_std=0.4"]).data.max_noise_std == 0.4
    with pytest.raises(ConfigError, match="max_noise_std must be >= 0"):
        load_config(RunConfig, overrides=["data.max_noise_std=-0.1"])


def test_moving_distractors_add_clutter_and_leave_the_actor_and_label_alone():
    plain_config = MovingDigitsConfig(**{**SMALL.__dict__, "max_noise_std": 0.0})
    movers_config = MovingDigitsConfig(**{**plain_config.__dict__, "max_moving_distractors": 2})
    plain, movers = MovingDigits("test", plain_config), MovingDigits("test", movers_config)
    counts = []
    for i in range(24):
        a, b = plain[i], movers[i]
        count = b["meta"]["num_moving_distractors"]
        counts.append(count)
        assert a["label"] == b["label"] and a["meta"]["num_moving_distractors"] == 0
        assert bool((b["clip"] >= a["clip"]).all())  # pasted on top (max-composite): nothing of the clip is lost
        assert torch.equal(a["clip"], b["clip"]) == (count == 0)
        if count:
            assert b["meta"]["background_fraction"] < a["meta"]["background_fraction"]
            assert b["meta"]["static_frame_fraction"] <= a["meta"]["static_frame_fraction"]
    assert set(counts) == {0, 1, 2}


def test_actor_pause_is_recorded_even_where_moving_clutter_hides_it_from_the_frame_repeats():
    plain_config = MovingDigitsConfig(**{**SMALL.__dict__, "max_noise_std": 0.0})
    movers_config = MovingDigitsConfig(**{**plain_config.__dict__, "max_moving_distractors": 2})
    plain, movers = MovingDigits("test", plain_config), MovingDigits("test", movers_config)
    hidden = 0
    for i in range(40):
        a, b = plain[i]["meta"], movers[i]["meta"]
        assert a["actor_static_fraction"] == a["static_frame_fraction"]  # no moving clutter: the same thing
        assert b["actor_static_fraction"] == a["actor_static_fraction"]  # the actor is the same clip's actor
        hidden += b["actor_static_fraction"] > b["static_frame_fraction"]
    assert hidden >= 5


def test_moving_distractors_are_a_data_setting():
    from dance3d.config import load_config
    from dance3d.training.trainer import RunConfig

    assert load_config(RunConfig, overrides=["data.max_moving_distractors=3"]).data.max_moving_distractors == 3
    with pytest.raises(ConfigError, match="max_moving_distractors"):
        load_config(RunConfig, overrides=["data.max_moving_distractors=-1"])
