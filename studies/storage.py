"""Open study storage (SQLite file or PostgreSQL URL) with heartbeats and retry of killed trials.

A worker that dies mid-trial stops writing heartbeats; once ``grace_period_s`` has passed, the
next worker to start a trial (or the next ``study run``) marks that trial FAIL and, up to
``max_retry`` times, enqueues a copy with the same parameters (Optuna's retry callback).

A SQLite file is created (its schema written) under an exclusive ``flock`` on ``<file>.lock``, so
several ``study run`` processes started at once on a new file do not race on the schema. On a
server database (PostgreSQL) two workers started at once may both try to create the schema; the
one that loses opens the storage again once the other's schema is there.
"""

from __future__ import annotations

import fcntl
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.exc import IntegrityError, ProgrammingError

from dance3d.errors import ConfigError

try:  # optuna >= 4.9 renamed the retry callback
    from optuna.storages import RetryHeartbeatStaleTrialCallback as _RetryCallback

    _CALLBACK_ARG = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - optuna < 4.9
    from optuna.storages import RetryFailedTrialCallback as _RetryCallback

    _CALLBACK_ARG = "failed_trial_callback"


SCHEMA_ATTEMPTS = 3
"""Tries to open a server database whose schema another worker is creating at the same moment."""


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna without its per-trial INFO log lines and experimental/deprecation warnings."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def storage_url(text: str) -> str:
    """A database URL; a plain path (``study.db``) means a SQLite file."""
    return text if "://" in text else f"sqlite:///{text}"


def redact(url: str) -> str:
    """``url`` without its password (for messages)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url in ("sqlite:///:memory:", "sqlite://"):
        return None
    return Path(url[len("sqlite:///") :])


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) between processes and threads."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int | None = None,
    grace_period_s: int | None = None,
    max_retry: int = 2,
    must_exist: bool = False,
) -> RDBStorage:
    """An ``RDBStorage`` for ``url``; with a heartbeat, stale trials are failed and retried.

    ``must_exist=True`` (status, plot, export) refuses a SQLite file that does not exist instead of
    creating an empty database.
    """
    url = storage_url(url)
    path = _sqlite_file(url)
    if path is not None:
        if must_exist and not path.is_file():
            raise ConfigError(f"storage file not found: {path}")
        if not must_exist and not path.parent.exists():
            raise ConfigError(f"storage directory not found: {path.parent}")
    creating = _file_lock(path.with_name(path.name + ".lock")) if path is not None and not must_exist else nullcontext()
    try:
        with quiet_optuna(), creating:
            kwargs = {}
            if heartbeat_interval_s is not None:
                kwargs = {
                    "heartbeat_interval": heartbeat_interval_s,
                    "grace_period": grace_period_s,
                    _CALLBACK_ARG: retry_callback(max_retry),
                }
            for attempt in range(SCHEMA_ATTEMPTS):
                try:
                    return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **kwargs)
                except (IntegrityError, ProgrammingError):
                    # a server database: another worker created the schema at the same moment; it exists now
                    if path is not None or attempt + 1 == SCHEMA_ATTEMPTS:
                        raise
                    time.sleep(0.5)
    except ImportError as exc:
        raise ConfigError(f"cannot open storage {redact(url)}: {exc} (PostgreSQL needs psycopg2-binary)") from exc
    except Exception as exc:  # sqlalchemy errors: bad URL, unreachable server, auth, schema
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open storage {redact(url)}: {first_line}") from exc


def retry_callback(max_retry: int):
    """Optuna's callback that enqueues a WAITING copy of a failed trial (up to ``max_retry`` times)."""
    return _RetryCallback(max_retry=max_retry)


def study_names(storage: RDBStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(storage: RDBStorage, study_name: str | None) -> optuna.Study:
    """An existing study; without a name, the storage's only study."""
    names = study_names(storage)
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise ConfigError(f"the storage holds {len(names)} studies ({listed}); pass --study-name")
        study_name = names[0]
    if study_name not in names:
        raise ConfigError(f"study {study_name!r} not found; the storage holds: {', '.join(names) or 'no studies'}")
    return optuna.load_study(study_name=study_name, storage=storage)
