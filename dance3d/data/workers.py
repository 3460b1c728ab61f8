"""How a DataLoader's workers start: spawned where the dataset decodes video, forked otherwise.

A forked worker inherits the parent's memory, locks included. With PyAV 18 a worker forked from a
process that had decoded video itself (the trainer checks every file's first frame before the first
step; evaluation decodes too) hung for good in a futex wait: a lock held by one of the parent's
decoding threads at the fork is never released in the child. A spawned worker starts a fresh
interpreter (a second or two) and gets the dataset pickled. Datasets that only compute (the
synthetic clips and fields) keep the faster fork.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from dance3d.data.video_folder import VideoFolderDataset


def decodes_video(dataset: Dataset) -> bool:
    """Whether ``dataset`` (or the dataset a ``Subset``-like wrapper holds in ``.dataset``) decodes video files."""
    seen = set()
    while dataset is not None and id(dataset) not in seen:
        if isinstance(dataset, VideoFolderDataset):
            return True
        seen.add(id(dataset))
        dataset = getattr(dataset, "dataset", None)
    return False


def worker_context(dataset: Dataset, num_workers: int) -> str | None:
    """The ``multiprocessing_context`` for a DataLoader with ``num_workers`` over ``dataset``: ``"spawn"`` where
    workers would decode video, None (the platform's default) otherwise or without workers."""
    return "spawn" if num_workers > 0 and decodes_video(dataset) else None
