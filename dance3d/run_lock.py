"""Run-directory locks: one writer per output folder, stale locks of dead processes taken over.

``with run_lock(out_dir):`` creates ``out_dir/.lock`` atomically (``O_EXCL``) holding the holder's
pid and host. A second run on the same folder is refused with a message naming the holder. A lock
left by a killed process on this host (its pid is gone) is taken over; a lock from another host is
never guessed stale: the message says which file to delete once that run is known to be dead.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dance3d.errors import ConfigError

LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_lock(path: Path) -> dict | None:
    """The holder ``{"pid", "host"}`` written in lock file ``path``, or None if it is gone or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _is_stale(holder: dict | None) -> bool:
    if holder is None:  # half-written by a process killed between create and write
        return True
    return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1)))


def acquire(directory: str | Path) -> Path:
    """Create ``directory/.lock`` for this process; raise :class:`ConfigError` if a live run holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(path)
            if holder == me:
                return path
            if not _is_stale(holder):
                raise ConfigError(
                    f"{directory} is in use by pid {holder['pid']} on {holder['host']}; wait for it, or delete "
                    f"{path} if that run is dead"
                ) from None
            if read_lock(path) == holder:  # still the same stale holder: take it over
                path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        return path
    raise ConfigError(f"cannot take the lock {path}: other processes keep taking it")


def release(path: Path) -> None:
    """Remove lock file ``path`` if this process holds it."""
    if read_lock(path) == {"pid": os.getpid(), "host": socket.gethostname()}:
        path.unlink(missing_ok=True)


@contextmanager
def run_lock(directory: str | Path) -> Iterator[Path]:
    """Hold ``directory``'s lock for the body of the ``with`` block."""
    path = acquire(directory)
    try:
        yield path
    finally:
        release(path)
