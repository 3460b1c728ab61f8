"""VideoFolderDataset and video_io on tiny real encoded videos written by the tests."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from video_fixtures import frame_index, make_bad_file, make_good_folder, ramp_frames

from dance3d.data.moving_digits import MOTION_CLASSES, MovingDigits, MovingDigitsConfig
from dance3d.data.video_folder import BadVideoWarning, VideoFolderConfig, VideoFolderDataset
from dance3d.data.video_io import BadVideoError, export_moving_digits, read_video_frames, write_video
from dance3d.errors import ConfigError, DataError

SMALL = VideoFolderConfig(num_frames=8, height=32, width=32)
BAD_KINDS = {  # kind -> (file name, expected reason)
    "zero-byte": ("zero.mp4", "cannot decode"),
    "text": ("notes.mp4", "cannot decode"),
    "truncated": ("cut.mp4", "cannot decode"),
    "zero-frames": ("empty.avi", "zero frames"),
    "no-stream": ("nostream.mp4", "no video stream"),
}


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_good_folder(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def mixed_root(tmp_path: Path, good_root: Path) -> Path:
    """cat: a0.mp4, a1.avi, zero.mp4 (bad); dog: b0.mkv, cut.mp4 (bad)."""
    shutil.copytree(good_root / "cat", tmp_path / "cat")
    (tmp_path / "dog").mkdir()
    shutil.copy(good_root / "dog" / "b0.mkv", tmp_path / "dog" / "b0.mkv")
    make_bad_file(tmp_path / "cat" / "zero.mp4", "zero-byte")
    make_bad_file(tmp_path / "dog" / "cut.mp4", "truncated")
    return tmp_path


def indices(clip: torch.Tensor) -> list[int]:
    return [frame_index(clip[:, t].numpy()) for t in range(clip.shape[1])]


def test_items_shapes_labels_and_meta(good_root: Path) -> None:
    ds = VideoFolderDataset(good_root, SMALL)
    assert ds.classes == ("cat", "dog", "fish")
    assert len(ds) == 5
    assert [label for _, label in ds.samples] == [0, 0, 1, 1, 2]
    for i in range(len(ds)):
        item = ds[i]
        assert item["clip"].shape == (3, 8, 32, 32) and item["clip"].dtype == torch.float32
        assert 0.0 <= item["clip"].min() and item["clip"].max() <= 1.0
        assert item["label"] == ds.samples[i][1]
        assert item["meta"]["fps"] == pytest.approx(8.0)
        assert item["meta"]["path"] == str(ds.samples[i][0])
    assert ds[4]["meta"]["num_frames_decoded"] == 10  # the 48x32 fish video, resized and cropped
    with pytest.raises(IndexError):
        ds[5]


def test_classes_argument_maps_labels_and_rejects_unknown_folders(good_root: Path) -> None:
    ds = VideoFolderDataset(good_root, SMALL, classes=("bird", "fish", "dog", "cat"))
    assert [label for _, label in ds.samples] == [3, 3, 2, 2, 1]
    with pytest.raises(DataError, match="class folder .*fish is not one of the 2 known classes"):
        VideoFolderDataset(good_root, SMALL, classes=("cat", "dog"))


def test_uniform_sampling_spans_the_video_and_pads_short_ones(good_root: Path) -> None:
    ds = VideoFolderDataset(good_root, VideoFolderConfig(num_frames=4, height=32, width=32))
    assert indices(ds[0]["clip"]) == [0, 5, 10, 15]
    short = VideoFolderDataset(good_root, SMALL)[3]  # dog/b1.mp4 has 6 frames
    assert short["meta"]["padded_frames"] == 2
    assert indices(short["clip"]) == [0, 1, 2, 3, 4, 5, 5, 5]


def test_random_and_center_windows_are_strided_and_seeded(good_root: Path) -> None:
    def window(sampling: str, seed: int = 0, epoch: int = 0) -> list[int]:
        cfg = VideoFolderConfig(num_frames=4, height=32, width=32, sampling=sampling, frame_stride=2)
        ds = VideoFolderDataset(good_root, cfg, seed=seed)
        ds.set_epoch(epoch)
        return indices(ds[0]["clip"])  # cat/a0.mp4: 16 frames, window span 7

    center = window("center")
    assert center == [4, 6, 8, 10]
    first = window("random", seed=3)
    assert np.all(np.diff(first) == 2) and 0 <= first[0] <= 9
    assert window("random", seed=3) == first
    assert len({window("random", seed=s)[0] for s in range(8)}) > 1
    assert len({window("random", seed=3, epoch=e)[0] for e in range(8)}) > 1


def test_normalisation_and_resize_short_side(good_root: Path) -> None:
    plain = VideoFolderDataset(good_root, SMALL)[0]["clip"]
    cfg = VideoFolderConfig(num_frames=8, height=32, width=32, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.5])
    normed = VideoFolderDataset(good_root, cfg)[0]["clip"]
    mean, std = torch.tensor(cfg.mean)[:, None, None, None], torch.tensor(cfg.std)[:, None, None, None]
    torch.testing.assert_close(normed, (plain - mean) / std)
    cfg = VideoFolderConfig(num_frames=8, height=24, width=16, resize_short_side=40)
    assert VideoFolderDataset(good_root, cfg)[4]["clip"].shape == (3, 8, 24, 16)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="unknown sampling"):
        VideoFolderConfig(sampling="middle")
    with pytest.raises(ConfigError, match="resize_short_side"):
        VideoFolderConfig(height=64, resize_short_side=32)
    with pytest.raises(ConfigError, match="std"):
        VideoFolderConfig(std=(1.0, 0.0, 1.0))


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", ramp_frames(4, height=31))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", ramp_frames(4).astype(np.float32))
    with pytest.raises(ConfigError, match="no encoder"):
        write_video(tmp_path / "x.mp4", ramp_frames(4), codec="not-a-codec")


@pytest.mark.parametrize("codec,suffix", [("libx264", ".mp4"), ("mpeg4", ".avi")])
def test_write_read_round_trip(tmp_path: Path, codec: str, suffix: str) -> None:
    blocks = np.random.default_rng(0).integers(0, 4, (5, 16, 16, 3), dtype=np.uint8) * 80
    frames = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2)  # 4x4 blocks: codec-friendly
    decoded = read_video_frames(write_video(tmp_path / f"v{suffix}", frames, codec=codec))
    assert decoded.shape == (5, 64, 64, 3)
    assert np.abs(decoded.astype(int) - frames).mean() < 16


def test_exported_moving_digits_round_trip(tmp_path: Path) -> None:
    md_cfg = MovingDigitsConfig(num_frames=8, height=32, width=32, max_noise_std=0.0)  # noise-free
    paths = export_moving_digits(tmp_path, "val", 6, md_cfg)
    assert len(paths) == 6 and all(p.name == f"val_{i}.mp4" for i, p in enumerate(paths))
    ds = VideoFolderDataset(tmp_path, SMALL, classes=MOTION_CLASSES)
    source = MovingDigits("val", md_cfg)
    assert len(ds) == 6
    for i in range(len(ds)):
        item = ds[i]
        original = source[int(Path(item["meta"]["path"]).stem.split("_")[1])]
        assert item["label"] == original["label"]
        error = (item["clip"] - original["clip"]).abs().mean()
        assert error < 0.012
        assert (item["clip"] - original["clip"].flip(1)).abs().mean() > 2 * error  # motion kept
    with pytest.raises(ConfigError, match="count"):
        export_moving_digits(tmp_path, "val", 0, md_cfg)


def test_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        VideoFolderDataset(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="file.txt is not a directory"):
        VideoFolderDataset(tmp_path / "file.txt")
    with pytest.raises(DataError, match="no class folders"):
        VideoFolderDataset(tmp_path)
    write_video(tmp_path / "loose.mp4", ramp_frames(4))
    with pytest.raises(DataError, match="found videos directly in it, e.g. loose.mp4"):
        VideoFolderDataset(tmp_path)


def test_empty_class_folder(tmp_path: Path, good_root: Path) -> None:
    shutil.copytree(good_root / "cat", tmp_path / "cat")
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("not a video")
    with pytest.raises(DataError, match="class folder .*dog has no videos"):
        VideoFolderDataset(tmp_path, SMALL)
    with pytest.warns(BadVideoWarning, match="dog has no videos"):
        ds = VideoFolderDataset(tmp_path, VideoFolderConfig(num_frames=8, height=32, width=32, skip_bad=True))
    assert ds.classes == ("cat", "dog") and len(ds) == 2
    shutil.rmtree(tmp_path / "cat")
    with pytest.raises(DataError, match="no videos in the class folders"), pytest.warns(BadVideoWarning):
        VideoFolderDataset(tmp_path, VideoFolderConfig(skip_bad=True))


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_video_error_names_the_file(tmp_path: Path, good_root: Path, kind: str) -> None:
    name, reason = BAD_KINDS[kind]
    shutil.copytree(good_root / "cat", tmp_path / "cat")
    make_bad_file(tmp_path / "cat" / name, kind)
    ds = VideoFolderDataset(tmp_path, SMALL)  # bad files are only found when read
    bad_index = [p.name for p, _ in ds.samples].index(name)
    with pytest.raises(BadVideoError, match=f"{name}: {reason}") as info:
        ds[bad_index]
    assert info.value.path.endswith(name) and info.value.reason.startswith(reason)


def test_skip_bad_substitutes_next_good_video_and_reports(mixed_root: Path) -> None:
    ds = VideoFolderDataset(mixed_root, VideoFolderConfig(num_frames=8, height=32, width=32, skip_bad=True))
    names = [p.name for p, _ in ds.samples]
    assert names == ["a0.mp4", "a1.avi", "zero.mp4", "b0.mkv", "cut.mp4"]
    with pytest.warns(BadVideoWarning) as record:
        items = [ds[i] for i in range(len(ds))]
    assert [str(w.message) for w in record] == [
        f"skipping bad video {mixed_root / 'cat' / 'zero.mp4'}: cannot decode: "
        "Invalid data found when processing input",
        f"skipping bad video {mixed_root / 'dog' / 'cut.mp4'}: cannot decode: Invalid data found when processing input",
    ]
    served = [Path(it["meta"]["path"]).name for it in items]
    assert served == ["a0.mp4", "a1.avi", "b0.mkv", "b0.mkv", "a0.mp4"]  # bad -> next good one
    assert [it["label"] for it in items] == [0, 0, 1, 1, 0]
    assert [Path(p).name for p, _ in ds.skipped] == ["zero.mp4", "cut.mp4"]
    assert ds.summary().startswith("skipped 2 of 5 videos: cat/zero.mp4 (cannot decode: Invalid data")
    assert "dog/cut.mp4 (cannot decode" in ds.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known-bad files are skipped silently the second time
        assert Path(ds[2]["meta"]["path"]).name == "b0.mkv"


def test_skip_bad_gives_up_when_every_video_is_bad(tmp_path: Path) -> None:
    make_bad_file(tmp_path / "cat" / "x.mp4", "text")
    make_bad_file(tmp_path / "dog" / "y.avi", "zero-frames")
    ds = VideoFolderDataset(tmp_path, VideoFolderConfig(skip_bad=True))
    with pytest.raises(DataError, match=r"every video .* bad: skipped 2 of 2 .*dog/y.avi \(zero frames\)"):
        with pytest.warns(BadVideoWarning):
            ds[1]


def test_scan_bad_videos_and_validate(mixed_root: Path, good_root: Path) -> None:
    ds = VideoFolderDataset(mixed_root, SMALL)
    bad = ds.scan_bad_videos(progress=False)
    assert [(Path(p).name, why.split(":")[0]) for p, why in bad] == [
        ("zero.mp4", "cannot decode"),
        ("cut.mp4", "cannot decode"),
    ]
    with pytest.raises(DataError, match="2 of 5 videos .* are bad: cat/zero.mp4 .*dog/cut.mp4"):
        ds.validate(progress=False)
    VideoFolderDataset(good_root, SMALL).validate(progress=False)


def test_dataloader_worker_error_names_the_file(mixed_root: Path) -> None:
    ds = VideoFolderDataset(mixed_root, SMALL)
    # spawned, as dance3d's own loaders do: a forked worker decoding video can hang (fork after threads)
    loader = DataLoader(ds, batch_size=1, num_workers=1, sampler=[2], multiprocessing_context="spawn")
    with pytest.raises(BadVideoError, match=r"zero\.mp4: cannot decode"):
        next(iter(loader))
    good = next(iter(DataLoader(ds, batch_size=2, num_workers=1, sampler=[0, 3], multiprocessing_context="spawn")))
    assert good["clip"].shape == (2, 3, 8, 32, 32) and good["meta"]["padded_frames"].tolist() == [0, 0]
