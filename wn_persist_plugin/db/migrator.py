"""Schema migrations: peewee's own numbered runner (`playhouse.migrations`) over the
files in `migrations/`, under a lock so that two processes starting at once are safe."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peewee import Database
from playhouse.migrations import Migration, Runner

from ..errors import MigrationTargetError
from .connect import is_postgres, is_sqlite

HISTORY_TABLE = "schema_migrations"
_PG_LOCK_KEY = 0x776E5F7065727369  # "wn_persi": one advisory lock for migrations


def migrations_dir() -> Path:
    """The installed `wn_persist_plugin.migrations` package, or the source tree's copy."""
    spec = importlib.util.find_spec("wn_persist_plugin.migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "migrations"


def _runner(db: Database) -> Runner:
    return Runner(db, str(migrations_dir()), table_name=HISTORY_TABLE)


@contextlib.contextmanager
def migration_lock(db: Database) -> Iterator[None]:
    """Hold a database-wide lock: a PostgreSQL advisory lock, or SQLite's write lock."""
    if is_postgres(db):
        db.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))
    elif is_sqlite(db):
        with db.atomic("IMMEDIATE"):
            yield
    else:
        yield


@dataclass(frozen=True)
class MigrationState:
    version: int
    latest: int
    applied: list[str]
    pending: list[str]


def state(db: Database) -> MigrationState:
    """Which migrations are applied and which are pending."""
    rows = _runner(db).status()
    applied = [m for m in rows if m.applied]
    pending = [m for m in rows if not m.applied and m.path]
    return MigrationState(
        version=max((m.idx for m in applied), default=0),
        latest=max((m.idx for m in rows if m.path), default=0),
        applied=[m.name for m in applied],
        pending=[m.name for m in pending],
    )


def _by_index(rows: list[Migration], index: int) -> Migration:
    for migration in rows:
        if migration.idx == index:
            return migration
    raise MigrationTargetError(f"no migration numbered {index}")


def migrate(db: Database, to: int | None = None) -> list[str]:
    """Bring the schema to version `to` (default: latest), up or down.

    Returns the names of the migrations run, in order; empty when already there.
    """
    with db.connection_context(), migration_lock(db):
        runner = _runner(db)
        rows = runner.status()
        if to is None:
            return runner.up()
        current = max((m.idx for m in rows if m.applied), default=0)
        if to > current:
            return runner.up(_by_index(rows, to).name)
        if to < current:
            later = [m for m in rows if m.applied and m.idx > to]
            if to < 0:
                raise MigrationTargetError("the version must be 0 or more")
            return runner.down(min(later).name)
        return []
