"""Opening the database named by the settings; transactions and connections for callers."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from peewee import Database, DatabaseProxy
from playhouse import db_url

from ..settings import Settings
from .dialect import is_postgres, is_sqlite

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30_000,
    "synchronous": "normal",
    "foreign_keys": 1,
}
SQLITE_FIELD_TYPES = {"ISK": "TEXT"}
POSTGRES_FIELD_TYPES = {"ISK": "NUMERIC(20, 2)"}

database_proxy = DatabaseProxy()
"""The database every model is bound to; `open_database(..., bind=True)` sets it."""


def open_database(settings: Settings | str, *, bind: bool = True) -> Database:
    """A (not yet connected) peewee database for the settings or a URL.

    SQLite gets WAL and a busy timeout; PostgreSQL a connection pool of
    `POSTGRES_POOL_SIZE` when that is set. With `bind`, the models use it.
    """
    url = settings if isinstance(settings, str) else settings.database_url
    pool_size = None if isinstance(settings, str) else settings.pool_size
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    extra: dict[str, Any] = {}
    if scheme == "sqlite":
        extra = {"pragmas": SQLITE_PRAGMAS, "field_types": SQLITE_FIELD_TYPES}
        # Our own timeout; peewee's default of 5 s is short for a busy writer.
        extra["timeout"] = 30
    else:
        scheme = "postgresql"
        if pool_size or parts.scheme.endswith("+pool"):
            scheme = "postgresql+pool"
            extra["max_connections"] = pool_size or 20
            extra["stale_timeout"] = 300
            extra["timeout"] = 30
        extra["field_types"] = POSTGRES_FIELD_TYPES
    url = scheme + url[len(parts.scheme) :]
    db = db_url.connect(url, unquote_password=True, unquote_user=True, **extra)
    if bind:
        database_proxy.initialize(db)
    return db


def write_transaction(db: Database) -> Any:
    """A transaction for writers: IMMEDIATE on SQLite (takes the write lock up front, so
    concurrent read-then-write transactions queue instead of failing), plain on PostgreSQL."""
    return db.atomic("IMMEDIATE") if is_sqlite(db) else db.atomic()


def database_size(db: Database) -> int | None:
    """Size of the database in bytes, as the server reports it."""
    if is_sqlite(db):
        pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
        page_size = db.execute_sql("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(page_size)
    if is_postgres(db):
        return int(db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0])
    return None


def connected(db: Database) -> Any:
    """A connection for the block: opened (and closed after) only if none is open, so a
    caller's open connection or transaction is left as it was."""
    return db.connection_context() if db.is_closed() else contextlib.nullcontext()
