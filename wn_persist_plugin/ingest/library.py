"""Synchronous library functions: store one killmail now, read a character's killmails.

Both use the bound database (`database.database_proxy`): a caller must have opened it
with `database.open_database(settings)` (which binds it) or have the plugin started.
They work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from peewee import Database

from ..db.connect import database_proxy
from ..db.dialect import to_utc
from ..db.models import Involvement, TrackedCharacter
from ..killmails import parse as km
from .rows import involvement_rows
from .store import write_rows

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


def _tracked_on(
    db: Database, victim_id: int | None, attacker_ids: list[int]
) -> dict[int, str | None]:
    """The tracked characters among these ids, with their names, from the table."""
    wanted = set(attacker_ids)
    if victim_id is not None:
        wanted.add(victim_id)
    if not wanted:
        return {}
    T = TrackedCharacter
    found: dict[int, str | None] = {}
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 900):
        query = (
            T.select(T.character_id, T.character_name)
            .where(T.tracked & T.character_id.in_(ordered[start : start + 900]))
            .tuples()
        )
        found.update((int(cid), name) for cid, name in query.execute(db))
    return found


def maybe_persist_killmail(
    killmail: Mapping[str, Any],
    tracked: Collection[int] | Mapping[int, str | None] | None = None,
) -> PersistResult:
    """Store the mail's involvement rows now, in one transaction, if a tracked character
    is on it. Idempotent (a redelivered mail changes nothing).

    `tracked` defaults to the characters marked tracked in `tracked_characters`; a mapping
    of id -> name also supplies names. Malformed mails return `error` (never raise);
    database connection errors are raised.
    """
    db = database_proxy.obj
    if db is None:
        raise RuntimeError("no database: call database.open_database() or start the plugin")
    try:
        envelope = km.unwrap(killmail)
        victim_id, attacker_ids = km.participant_ids(envelope)
    except km.MalformedKillmail as exc:
        return PersistResult("error", exc.killmail_id, reason=str(exc))
    if tracked is None:
        names = _tracked_on(db, victim_id, attacker_ids)
    elif isinstance(tracked, Mapping):
        names = {int(k): v for k, v in tracked.items()}
    else:
        names = {int(k): None for k in tracked}
    if not (victim_id in names or any(a in names for a in attacker_ids)):
        return PersistResult("ignored", km._maybe_id(envelope.killmail_id))
    try:
        mail = km.parse(envelope)
    except km.MalformedKillmail as exc:
        return PersistResult("error", exc.killmail_id, reason=str(exc))
    rows = involvement_rows(mail, names.keys(), names.get)
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
