"""Writing involvement rows: idempotent batches, one transaction each.

The same mail delivered again changes nothing, except that a mail stored without a
zKillboard value (`value_source` `none`, or `esi_prices`: estimated from market prices)
gets the value, zkb block, `value_source` `zkb` and a new `processed_at` from a later
delivery that carries one; a zKillboard value is replaced only by a repriced
republication (R2Z2's `sequence_updated`, `InvolvementRow.repriced`). The new
`processed_at` marks the mail's periods for re-aggregation.

`processed_at` (the change marker incremental aggregation reads) is stamped here, inside
each write transaction, whatever the rows carry: rows that waited in a buffer or were
retried are stamped when they are committed, not when they were built.

Rows arrive as `rows.InvolvementRow` and go to the driver directly (`executemany`;
psycopg2's `execute_values`) with the INSERT ... ON CONFLICT text written once here:
building the same statement with peewee took about 80% of the writer's time. Values are
converted as the model fields would.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from peewee import (  # type: ignore[attr-defined]  # EXCEPTIONS: public, not in the stubs
    EXCEPTIONS,
    Database,
    DatabaseError,
    ExceptionWrapper,
    Field,
    JSONField,
)

from ..db.connect import is_sqlite, write_transaction
from ..db.dialect import stored_instant
from ..db.fields import ISKField, UTCDateTimeField, json_dumps, to_isk
from ..db.models import VALUE_ZKB, Involvement
from ..redact import first_line
from .rows import COLUMNS, InvolvementRow

log = logging.getLogger(__name__)

driver_errors = ExceptionWrapper(EXCEPTIONS)
"""Re-raises a DB-API driver's exceptions as peewee's (raw cursor work bypasses peewee)."""

BATCH_SIZE = 500
"""Rows per INSERT statement: 21 columns x 500 stays far below psycopg's parameter cap."""

CONFLICT_TARGET: list[Field] = [
    Involvement.killmail_id,
    Involvement.related_character_id,
    Involvement.character_role,
]


@dataclass
class WriteResult:
    rows: int = 0
    """Rows offered."""
    failed: list[tuple[InvolvementRow, str]] = field(default_factory=list)
    """Rows that could not be written, with the database's reason."""


_UPDATE_ON_CONFLICT = ("total_value", "zkb_data", "solo", "value_source", "processed_at")
_PROCESSED_AT = Involvement.processed_at
_FIELDS: list[Field] = [f for f in Involvement._meta.sorted_fields if f.name != "id"]
"""The columns written: the row's columns, then `processed_at` (the write's stamp)."""
if [f.name for f in _FIELDS] != [*COLUMNS, _PROCESSED_AT.name]:
    raise RuntimeError("InvolvementRow and the Involvement model list different columns")
_values_of = operator.attrgetter(*COLUMNS)


def _sqlite_time(value: Any) -> Any:
    return stored_instant(value, sqlite=True)


def _pg_time(value: Any) -> Any:
    return stored_instant(value, sqlite=False)


def _sqlite_isk(value: Any) -> str | None:
    amount = to_isk(value)
    return None if amount is None else format(amount, "f")


def _converters(db: Database) -> list[Any]:
    """Per column, the function turning a row value into a driver parameter (None: as
    is): the same conversions as the model fields (`fields.py`), without their per-value
    dialect lookups."""
    sqlite = is_sqlite(db)
    out: list[Any] = []
    for f in _FIELDS:
        if isinstance(f, UTCDateTimeField):
            out.append(_sqlite_time if sqlite else _pg_time)
        elif isinstance(f, ISKField):
            out.append(_sqlite_isk if sqlite else to_isk)
        elif isinstance(f, JSONField):
            # SQLite: text, wrapped in json() by the placeholder; PostgreSQL: peewee's
            # jsonb adapter for the driver in use. Both encode with fields.json_dumps.
            out.append(json_dumps if sqlite else f.db_value)
        else:
            out.append(None)
    return out


def _statement(db: Database, values: str, repriced: bool = False) -> str:
    """INSERT ... ON CONFLICT DO UPDATE (a zKillboard value replacing a missing or
    estimated one; for `repriced` rows, also a different zKillboard value): the same text
    on SQLite and PostgreSQL apart from the placeholders."""
    names = [f.column_name for f in _FIELDS]
    quoted = ", ".join(f'"{n}"' for n in names)
    target = ", ".join(f'"{f.column_name}"' for f in CONFLICT_TARGET)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in _UPDATE_ON_CONFLICT)
    table = Involvement._meta.table_name
    stored = f'"{table}"."total_value"'
    not_zkb = f'"{table}"."value_source" <> \'{VALUE_ZKB}\''
    if repriced:
        changed = "IS DISTINCT FROM" if not is_sqlite(db) else "IS NOT"
        condition = (
            f'EXCLUDED."total_value" IS NOT NULL'
            f' AND ({stored} {changed} EXCLUDED."total_value" OR {not_zkb})'
        )
    else:
        condition = f'EXCLUDED."total_value" IS NOT NULL AND {not_zkb}'
    return (
        f'INSERT INTO "{table}" ({quoted}) VALUES {values} '
        f"ON CONFLICT ({target}) DO UPDATE SET {updates} WHERE {condition}"
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _params(
    db: Database, rows: Sequence[InvolvementRow], stamp: dt.datetime
) -> list[tuple[Any, ...]]:
    converters = _converters(db)
    stamp_value = converters[-1](stamp)
    spec = [
        (index, conv, isinstance(f, JSONField))
        for index, (f, conv) in enumerate(zip(_FIELDS[:-1], converters[:-1], strict=True))
        if conv is not None
    ]
    # Rows of one mail share their JSON objects (involvement_rows): encode each once.
    # Keyed by id(); the rows keep every object alive for the whole call.
    encoded: dict[int, Any] = {}
    out = []
    for row in rows:
        values = [*_values_of(row), stamp_value]
        for index, conv, is_json in spec:
            value = values[index]
            if value is None:
                continue
            if is_json:
                key = id(value)
                done = encoded.get(key)
                if done is None:
                    done = encoded[key] = conv(value)
                values[index] = done
            else:
                values[index] = conv(value)
        out.append(tuple(values))
    return out


def _insert(db: Database, rows: Sequence[InvolvementRow], stamp: dt.datetime) -> None:
    """The rows through the driver, in the caller's transaction, stamped `processed_at =
    stamp`; driver errors come out as peewee's exceptions."""
    for repriced in (False, True):
        part = [row for row in rows if row.repriced is repriced]
        if part:
            _insert_part(db, part, stamp, repriced)


def _insert_part(
    db: Database, rows: Sequence[InvolvementRow], stamp: dt.datetime, repriced: bool
) -> None:
    params = _params(db, rows, stamp)
    cursor = db.cursor()
    with driver_errors:
        if is_sqlite(db):
            marks = ", ".join("json(?)" if isinstance(f, JSONField) else "?" for f in _FIELDS)
            cursor.executemany(_statement(db, f"({marks})", repriced), params)
        elif type(cursor).__module__.startswith("psycopg2"):
            from psycopg2.extras import execute_values

            execute_values(cursor, _statement(db, "%s", repriced), params, page_size=BATCH_SIZE)
        else:
            marks = ", ".join("%s" for _ in _FIELDS)
            cursor.executemany(_statement(db, f"({marks})", repriced), params)


def _unique(rows: list[InvolvementRow]) -> list[InvolvementRow]:
    """One row per involvement key, as the database would keep them: the first, unless a
    later one has a value it lacks or is a repricing. (PostgreSQL refuses a statement
    whose ON CONFLICT would update the same row twice.)"""
    at: dict[Any, int] = {}
    out: list[InvolvementRow] = []
    for row in rows:
        try:
            key = row.key
            index = at.get(key)
        except TypeError:  # an unhashable key: a bad row, left for the database to refuse
            out.append(row)
            continue
        if index is None:
            at[key] = len(out)
            out.append(row)
        elif row.total_value is not None and (out[index].total_value is None or row.repriced):
            out[index] = row
    return out


def write_rows(
    db: Database, rows: Iterable[InvolvementRow], now: dt.datetime | None = None
) -> WriteResult:
    """Write involvement rows in one transaction; idempotent. Rows with the same key in
    one call are written once (the one with a value, if any).

    Every row written gets `processed_at` = the time of the write (taken inside the
    transaction; `now` fixes it, for tests and imports of old data).

    If the batch fails as a whole (a bad row, or a value its column refuses), each row is
    retried in its own savepoint so one bad row never loses the rest; the bad ones are
    returned in `failed`. Connection
    errors (`peewee.OperationalError`, `InterfaceError`) are raised for the caller to retry.
    """
    rows = list(rows)
    result = WriteResult(rows=len(rows))
    if not rows:
        return result
    rows = _unique(rows)
    try:
        with write_transaction(db):
            _insert(db, rows, now or _utcnow())
        return result
    except (DatabaseError, ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, DatabaseError) and _is_connection_error(db, exc):
            raise
        log.debug("batch of %d rows failed (%s); writing row by row", len(rows), exc)
    with write_transaction(db):
        stamp = now or _utcnow()
        for row in rows:
            try:
                with db.atomic():
                    _insert(db, [row], stamp)
            except (DatabaseError, ValueError, TypeError, OverflowError) as exc:
                if isinstance(exc, DatabaseError) and _is_connection_error(db, exc):
                    raise
                result.failed.append((row, first_line(exc)))
    return result


def _is_connection_error(db: Database, exc: Exception) -> bool:
    """True when the database itself is gone (retry later), not when a row is bad."""
    from peewee import InterfaceError, OperationalError

    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc).lower()
    # SQLite reports constraint-free data problems as OperationalError rarely; the
    # connection-level failures all mention one of these.
    markers = ("connect", "server closed", "terminating", "locked", "disk i/o", "unable to open")
    return any(marker in text for marker in markers) or db.is_closed()
