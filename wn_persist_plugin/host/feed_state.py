"""The standalone host's state in the database: the last R2Z2 sequence it handled.

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

from peewee import Database

from ..db.connect import write_transaction
from ..db.models import FeedState

LAST_SEQUENCE = "r2z2.last_sequence"

_bound: weakref.WeakKeyDictionary[Database, type[FeedState]] = weakref.WeakKeyDictionary()
_bound_lock = threading.Lock()


def feed_state_model(db: Database) -> type[FeedState]:
    """`FeedState` bound to `db` only (one class per database object)."""
    with _bound_lock:
        model = _bound.get(db)
        if model is None:

            class BoundFeedState(FeedState):
                class Meta:
                    database = db
                    table_name = FeedState._meta.table_name

            model = _bound[db] = BoundFeedState
        return model


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
