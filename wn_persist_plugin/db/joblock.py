"""A lock that keeps several processes on one database from running the same job at once.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) keyed by the job name.
SQLite: an OS file lock (the `filelock` package: `flock` on POSIX, `msvcrt` on Windows) on
`<database file>.<job>.lock` beside the database, so every process opening the same file
shares it and the kernel releases it when a holder dies. An in-memory SQLite database is
private to its process: a plain thread lock is enough there.

The lock is re-entrant inside one thread (the scheduler's job takes it, then `aggregate`
and `prune` take it again); another thread or process waits or gives up.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock
from filelock import Timeout as FileLockTimeout
from peewee import Database

from ..errors import JobBusy
from .connect import connected, is_postgres, is_sqlite

STATISTICS_JOB = "statistics"
"""Aggregation and retention share one lock: they read and write the same state."""


_local = threading.local()
_memory_locks: dict[str, threading.Lock] = {}
_memory_guard = threading.Lock()


def _held() -> dict[tuple[int, str], int]:
    if not hasattr(_local, "held"):
        _local.held = {}
    return _local.held


def advisory_key(job: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock`, derived from the job name."""
    digest = hashlib.sha256(f"wn_persist:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_lock_path(db: Database, job: str) -> Path | None:
    """The lock file for a SQLite database file; None for an in-memory database."""
    name = db.database
    if not name or name == ":memory:" or str(name).startswith("file::memory:"):
        return None
    return Path(str(name)).resolve().with_name(f"{Path(str(name)).name}.{job}.lock")


def _poll(try_once: Callable[[], bool], wait: float) -> bool:
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        if try_once():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))


@contextlib.contextmanager
def job_lock(db: Database, job: str = STATISTICS_JOB, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the job's lock for the block; raise `JobBusy` if it is not free within `wait`
    seconds. Re-entrant in the thread that holds it."""
    key = (id(db), job)
    held = _held()
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    # One connection for the whole block: the advisory lock lives on it.
    with connected(db), _acquire(db, job, wait):
        held[key] = 1
        try:
            yield
        finally:
            del held[key]


@contextlib.contextmanager
def _acquire(db: Database, job: str, wait: float) -> Iterator[None]:
    if is_postgres(db):
        lock_id = advisory_key(job)

        def try_once() -> bool:
            return bool(db.execute_sql("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0])

        if not _poll(try_once, wait):
            raise JobBusy(job)
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return
    path = sqlite_lock_path(db, job) if is_sqlite(db) else None
    if path is None:
        with _memory_guard:
            lock = _memory_locks.setdefault(f"{id(db)}:{job}", threading.Lock())
        got = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
        if not got:
            raise JobBusy(job)
        try:
            yield
        finally:
            lock.release()
        return
    file_lock = FileLock(str(path), thread_local=False)
    try:
        file_lock.acquire(timeout=max(wait, 0.0))
    except FileLockTimeout:
        raise JobBusy(job) from None
    try:
        yield
    finally:
        file_lock.release()
