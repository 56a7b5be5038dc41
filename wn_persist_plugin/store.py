"""Writing involvement rows: idempotent batches, one transaction each.

The same mail delivered again changes nothing, except that a mail stored without a value
(no zkb block) gets its value, zkb block and a new `processed_at` from a later delivery
that carries one; a stored value is never replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from peewee import EXCLUDED, Database, DatabaseError

from .database import write_transaction
from .models import Killmail

log = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Rows per INSERT statement: 21 columns x 500 stays far below psycopg's parameter cap."""

CONFLICT_TARGET = [Killmail.killmail_id, Killmail.related_character_id, Killmail.character_role]


@dataclass
class WriteResult:
    rows: int = 0
    """Rows offered."""
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """Rows that could not be written, with the database's reason."""


def _insert(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH_SIZE):
        (
            Killmail.insert_many(rows[start : start + BATCH_SIZE])
            .on_conflict(
                conflict_target=CONFLICT_TARGET,
                update={
                    Killmail.total_value: EXCLUDED.total_value,
                    Killmail.zkb_data: EXCLUDED.zkb_data,
                    Killmail.solo: EXCLUDED.solo,
                    Killmail.processed_at: EXCLUDED.processed_at,
                },
                where=(Killmail.total_value.is_null() & EXCLUDED.total_value.is_null(False)),
            )
            .execute(db)
        )


def write_rows(db: Database, rows: Iterable[dict[str, Any]]) -> WriteResult:
    """Write involvement rows in one transaction; idempotent.

    If the batch fails as a whole (a bad row), each row is retried in its own savepoint so
    one bad row never loses the rest; the bad ones are returned in `failed`. Connection
    errors (`peewee.OperationalError`, `InterfaceError`) are raised for the caller to retry.
    """
    rows = list(rows)
    result = WriteResult(rows=len(rows))
    if not rows:
        return result
    try:
        with write_transaction(db):
            _insert(db, rows)
        return result
    except DatabaseError as exc:
        if _is_connection_error(db, exc):
            raise
        log.debug("batch of %d rows failed (%s); writing row by row", len(rows), exc)
    with write_transaction(db):
        for row in rows:
            try:
                with db.atomic():
                    _insert(db, [row])
            except DatabaseError as exc:
                if _is_connection_error(db, exc):
                    raise
                result.failed.append((row, str(exc).strip().splitlines()[0]))
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
