"""Synchronous library functions: store one killmail now, read a character's killmails.

Both use the bound database (`db.connect.database_proxy`): a caller must have opened it
with `db.connect.open_database(settings)` (which binds it) or have the plugin started.
They work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from peewee import Database

from ..db.connect import database_proxy
from ..db.dialect import to_utc
from ..db.models import Involvement
from ..enrichment.fill import RowFiller
from ..errors import MalformedKillmail
from ..killmails.parse import killmail_id_of
from .match import match
from .rows import RowBatch
from .store import write_rows
from .tracked import TrackedSet, load_tracked

Status = Literal["stored", "ignored", "error"]


@dataclass(frozen=True)
class PersistResult:
    """What `maybe_persist_killmail` did."""

    status: Status
    """`stored`: rows written (or already there); `ignored`: no tracked character;
    `error`: malformed mail or rows the database refused (see `reason`)."""
    killmail_id: int | None = None
    rows: int = 0
    """Rows written."""
    reason: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == "stored"


_fillers: weakref.WeakKeyDictionary[Database, RowFiller] = weakref.WeakKeyDictionary()
_fillers_lock = threading.Lock()


def _filler(db: Database) -> RowFiller:
    """One `RowFiller` per database (it keeps the universe tables in memory)."""
    with _fillers_lock:
        filler = _fillers.get(db)
        if filler is None:
            filler = _fillers[db] = RowFiller(db)
        return filler


def maybe_persist_killmail(
    killmail: Mapping[str, Any],
    tracked: Iterable[int] | Mapping[int, str | None] | None = None,
) -> PersistResult:
    """Store the mail's involvement rows now, in one transaction, if a tracked character
    is on it. Idempotent (a redelivered mail changes nothing). Regions and names the
    universe tables know are filled in, as on every other ingest path.

    `tracked` defaults to the characters marked tracked in `tracked_characters`; a mapping
    of id -> name also supplies names. Malformed mails return `error` (never raise);
    database connection errors are raised.
    """
    db = database_proxy.obj
    if db is None:
        raise RuntimeError("no database: call db.connect.open_database() or start the plugin")
    characters = load_tracked(db) if tracked is None else TrackedSet.of_ids(tracked)
    try:
        mail = match(killmail, characters)
    except MalformedKillmail as exc:
        return PersistResult("error", exc.killmail_id, reason=str(exc))
    if mail is None:
        return PersistResult("ignored", killmail_id_of(killmail))
    batch = RowBatch(_filler(db))
    batch.add(mail, characters)
    rows = batch.take()
    result = write_rows(db, rows)
    written = len(rows) - len(result.failed)
    if result.failed:
        reasons = "; ".join(reason for _, reason in result.failed)
        return PersistResult("error", mail.killmail_id, written, reasons)
    return PersistResult("stored", mail.killmail_id, written, mail.zkb_warning)


def _bound(value: dt.date | dt.datetime | None, end: bool) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return to_utc(value)
    start = dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)
    return start + dt.timedelta(days=1) if end else start


def get_character_killmails(
    character_id: int | str,
    from_date: dt.date | dt.datetime | None = None,
    to_date: dt.date | dt.datetime | None = None,
    limit: int = 100,
) -> list[Involvement]:
    """The character's involvements (kills and losses), newest first, at most `limit`.

    Dates are whole UTC days, both inclusive; aware datetimes are exact bounds (from
    inclusive, to exclusive). Naive datetimes are refused (`ValueError`).
    """
    cid = int(character_id)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    start = _bound(from_date, end=False)
    stop = _bound(to_date, end=True)
    query = Involvement.select().where(Involvement.related_character_id == cid)
    if start is not None:
        query = query.where(Involvement.kill_time >= start)
    if stop is not None:
        query = query.where(Involvement.kill_time < stop)
    query = query.order_by(
        Involvement.kill_time.desc(), Involvement.killmail_id.desc(), Involvement.character_role
    ).limit(limit)
    return list(query)
