"""Bad videos in evaluation are dropped and reported (never scored twice); decoding stops at the last sampled frame."""

from __future__ import annotations

import av
import numpy as np
import pytest
from video_fixtures import make_bad_file, ramp_frames

from dance3d.data import video_io
from dance3d.data.registry import DataConfig
from dance3d.data.video_folder import VideoFolderConfig, VideoFolderDataset
from dance3d.data.video_io import decode_video, export_moving_digits, write_video
from dance3d.evaluation import evaluate
from dance3d.models import create_model

DATA = DataConfig(num_frames=8, height=32, width=32)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "videos"
    export_moving_digits(root, "test", 6, DATA.moving_digits())
    bad = make_bad_file(root / sorted(p.name for p in root.iterdir())[0] / "a_broken.mp4", "truncated")
    return root, bad


@pytest.mark.parametrize("workers", [0, 1])
def test_evaluation_drops_and_reports_bad_videos(folder, workers):
    root, bad = folder
    config = VideoFolderConfig(num_frames=8, height=32, width=32, skip_bad=True)
    dataset = VideoFolderDataset(root, config)
    model = create_model("tiny-test", num_classes=len(dataset.classes))
    result = evaluate(model, dataset, classes=dataset.classes, batch_size=4, num_workers=workers, progress=False)
    assert result.num_clips == 6  # the good videos only
    paths = [r["path"] for r in result.records]
    assert len(set(paths)) == len(paths) == 6 and str(bad) not in paths  # none scored twice
    assert result.skipped == [(str(bad), result.skipped[0][1])] and "cannot decode" in result.skipped[0][1]
    assert result.to_dict()["skipped"]["count"] == 1


def test_evaluation_and_training_start_video_workers_by_spawning(folder, monkeypatch):
    """Every loader that decodes video spawns its workers (a worker forked after the parent decoded can hang): the
    context evaluation's loader gets, over the wrapper that reports bad videos, and the rule for wrapped datasets."""
    from torch.utils.data import Subset

    from dance3d import evaluation
    from dance3d.data.registry import build_dataset
    from dance3d.data.workers import worker_context

    root, _ = folder
    dataset = VideoFolderDataset(root, VideoFolderConfig(num_frames=8, height=32, width=32, skip_bad=True))
    contexts, real = [], evaluation.DataLoader

    def in_process(*args, **kwargs):  # records the context, then loads in this process (no worker started)
        contexts.append(kwargs["multiprocessing_context"])
        return real(*args, **{**kwargs, "num_workers": 0, "multiprocessing_context": None})

    monkeypatch.setattr(evaluation, "DataLoader", in_process)
    model = create_model("tiny-test", num_classes=len(dataset.classes))
    evaluate(model, dataset, classes=dataset.classes, batch_size=4, num_workers=2, limit=3, progress=False)
    assert contexts == ["spawn"]
    assert worker_context(Subset(dataset, [0]), 1) == "spawn" and worker_context(dataset, 0) is None
    assert worker_context(build_dataset(DataConfig(num_frames=8, height=32, width=32, num_train=4), "train"), 2) is None


class _CountingContainer:
    """An ``av`` container that counts the frames its ``decode`` yields."""

    def __init__(self, container, counter: list[int]) -> None:
        self.container, self.counter = container, counter

    def __enter__(self):
        self.container.__enter__()
        return self

    def __exit__(self, *exc):
        return self.container.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.container, name)

    def decode(self, *streams):
        for frame in self.container.decode(*streams):
            self.counter[0] += 1
            yield frame


@pytest.mark.parametrize(("name", "codec"), [("long.mp4", "libx264"), ("long.avi", "mpeg4"), ("long.mkv", "ffv1")])
def test_decoding_stops_after_the_last_sampled_frame(tmp_path, monkeypatch, name, codec):
    path = write_video(tmp_path / name, ramp_frames(20), codec=codec)
    counter = [0]
    real_open = av.open
    monkeypatch.setattr(video_io.av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counter))
    video = decode_video(path, select=lambda total: [0, total // 4])
    assert video.num_frames == 20 and len(video.frames) == 2
    assert counter[0] == 6  # frames 0..5, not all 20
    assert np.abs(video.frames[1].astype(int) - ramp_frames(20)[5]).max() < 8  # frame 5 itself


def test_a_video_shorter_than_its_header_is_decoded_again_whole(tmp_path, monkeypatch):
    path = write_video(tmp_path / "short.mp4", ramp_frames(10))
    monkeypatch.setattr(video_io, "_header_frame_count", lambda container, stream: 40)  # a lying header
    video = decode_video(path, select=lambda total: [total - 1])
    assert video.num_frames == 10 and len(video.frames) == 1
    assert np.abs(video.frames[0].astype(int) - ramp_frames(10)[9]).max() < 8
