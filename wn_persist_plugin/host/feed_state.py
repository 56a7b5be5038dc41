"""The standalone host's state in the database: the last R2Z2 sequence it handled, and
the sequences it skipped (`record_skipped`, listed by `skipped_sequences` for a later
fetch).

The host opens its own database object (unbound); the plugin binds the models to
`database_proxy`. Queries here go through a `FeedState` subclass bound to the host's
database for good, never through `Model.bind_ctx`: that rebinds the one model class for
the whole process, so a thread reading the state (a status command, a test) while the
host saves it sent the host's INSERT through the reader's connection, where it waited on
the host's own open write transaction until the busy timeout ("database is locked").
Both functions open the connection when it is closed and leave it open (the caller
closes it).
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

from peewee import Database, Model

from ..db.connect import write_transaction
from ..db.models import FeedState, SkippedSequence

LAST_SEQUENCE = "r2z2.last_sequence"

_bound: weakref.WeakKeyDictionary[Database, dict[type[Model], type[Model]]] = (
    weakref.WeakKeyDictionary()
)
_bound_lock = threading.Lock()

M = TypeVar("M", bound=Model)


def bound_model(model: type[M], db: Database) -> type[M]:
    """`model` bound to `db` only (one subclass per database object and model).
    `Model.bind_ctx` would rebind the class for the whole process: a reader in another
    thread then sent the host's writes through its own connection."""
    with _bound_lock:
        models = _bound.setdefault(db, {})
        bound = models.get(model)
        if bound is None:
            meta = type("Meta", (), {"database": db, "table_name": model._meta.table_name})
            bound = models[model] = type(f"Bound{model.__name__}", (model,), {"Meta": meta})
        return cast(type[M], bound)


def feed_state_model(db: Database) -> type[FeedState]:
    """`FeedState` bound to `db` only."""
    return bound_model(FeedState, db)


def load_sequence(db: Database, key: str = LAST_SEQUENCE) -> int | None:
    """The stored sequence, or None before the first save."""
    db.connect(reuse_if_open=True)
    model = feed_state_model(db)
    row = model.get_or_none(model.key == key)
    return int(row.value) if row is not None else None


def save_sequence(db: Database, sequence: int, key: str = LAST_SEQUENCE) -> None:
    """Store `sequence` under `key` (insert or replace)."""
    now = dt.datetime.now(dt.UTC)
    db.connect(reuse_if_open=True)
    model = feed_state_model(db)
    with write_transaction(db):
        (
            model.insert(key=key, value=str(sequence), updated_at=now)
            .on_conflict(
                conflict_target=[model.key],
                update={model.value: str(sequence), model.updated_at: now},
            )
            .execute()
        )


@dataclass(frozen=True)
class Skipped:
    """A sequence the host skipped (see `db.models.SkippedSequence`)."""

    sequence: int
    killmail_id: int | None
    reason: str
    skipped_at: dt.datetime | None = None


def record_skipped(db: Database, skipped: Iterable[Skipped]) -> None:
    """Store skipped sequences (a sequence recorded twice keeps its latest reason)."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "sequence": s.sequence,
            "killmail_id": s.killmail_id,
            "reason": s.reason[:500],
            "skipped_at": s.skipped_at or now,
        }
        for s in skipped
    ]
    if not rows:
        return
    db.connect(reuse_if_open=True)
    model = bound_model(SkippedSequence, db)
    with write_transaction(db):
        (
            model.insert_many(rows)
            .on_conflict(
                conflict_target=[model.sequence],
                preserve=[model.killmail_id, model.reason, model.skipped_at],
            )
            .execute()
        )


def skipped_sequences(db: Database, limit: int | None = None) -> list[Skipped]:
    """The skipped sequences, newest first (`limit`: at most that many)."""
    db.connect(reuse_if_open=True)
    model = bound_model(SkippedSequence, db)
    query = model.select().order_by(model.sequence.desc())
    if limit is not None:
        query = query.limit(limit)
    return [Skipped(r.sequence, r.killmail_id, r.reason, r.skipped_at) for r in query]


def count_skipped(db: Database) -> int:
    """How many sequences were skipped."""
    db.connect(reuse_if_open=True)
    return bound_model(SkippedSequence, db).select().count()
