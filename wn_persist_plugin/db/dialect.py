"""Where SQLite and PostgreSQL differ outside the aggregation SQL: which one a database is,
how an instant or a day is passed to raw SQL, and the parameter placeholder.

Instants are stored as naive UTC on both (`timestamp` on PostgreSQL, ISO text on SQLite,
which compares correctly as text); days as `date` / ISO text.
"""

from __future__ import annotations

import datetime as dt

from peewee import Database, PostgresqlDatabase, SqliteDatabase


def is_sqlite(db: Database) -> bool:
    return isinstance(db, SqliteDatabase)


def is_postgres(db: Database) -> bool:
    return isinstance(db, PostgresqlDatabase)


def to_utc(value: dt.datetime) -> dt.datetime:
    """An aware datetime converted to UTC; naive datetimes are refused."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: pass an aware datetime (UTC)")
    return value.astimezone(dt.UTC)


def stored_instant(value: dt.datetime, *, sqlite: bool) -> dt.datetime | str:
    """An aware instant as the database stores it: naive UTC, as ISO text on SQLite."""
    naive = to_utc(value).replace(tzinfo=None)
    return naive.isoformat(sep=" ") if sqlite else naive


def instant_param(db: Database, value: dt.datetime) -> dt.datetime | str:
    """An aware instant as a raw-SQL parameter compared with a stored time column."""
    return stored_instant(value, sqlite=is_sqlite(db))


def day_param(db: Database, value: dt.date) -> dt.date | str:
    """A day as a raw-SQL parameter compared with a stored date or `date(time)`."""
    return value.isoformat() if is_sqlite(db) else value


def placeholders(db: Database, sql: str) -> str:
    """SQL written with `?` placeholders, in the driver's style (`%s` on PostgreSQL)."""
    return sql.replace("?", db.param)
