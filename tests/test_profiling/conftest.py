"""Fixtures for the profiling tests (the fakes themselves live in profiling_fakes.py)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from profiling.meters import sysfs


@pytest.fixture
def non_root_permissions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read sysfs as a normal user would (the tests may run as root): sysfs files belong to root,
    so only the "others" read bit lets a normal user read them."""
    real_open = open

    def open_as_user(path: os.PathLike | str, *args: object, **kwargs: object) -> object:
        if not os.stat(path).st_mode & stat.S_IROTH:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sysfs, "open", open_as_user, raising=False)
