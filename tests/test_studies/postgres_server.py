"""A throw-away PostgreSQL server in a temp dir (unix socket only), for multi-worker study tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    """Postgres refuses to run as root: run as the ``postgres`` OS user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a server (trust auth, unix socket in the temp dir); yield its SQLAlchemy URL; stop and delete it."""
    root = Path(tempfile.mkdtemp(prefix="dance3d-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        run = dict(check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]), **run)
        port = _free_port()
        options = f"-k {root} -p {port} -c listen_addresses='' -c fsync=off"
        start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        subprocess.run(_as_postgres(start), **run)
        try:
            yield f"postgresql+psycopg2://postgres@/postgres?host={root}&port={port}"
        finally:
            stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
