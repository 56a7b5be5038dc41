"""The standalone host's state in the database: the last R2Z2 sequence it handled.

The host opens its own database object (unbound) and binds `FeedState` to it only for
each read or write, so it never disturbs `database_proxy`, which the plugin binds to its
own database in `on_startup`. Both functions open the connection when it is closed and
leave it open (the caller closes it).
"""

from __future__ import annotations

import datetime as dt

from peewee import Database

from ..db.connect import write_transaction
from ..db.models import FeedState

LAST_SEQUENCE = "r2z2.last_sequence"


def load_sequence(db: Database, key: str = LAST_SEQUENCE) -> int | None:
    """The stored sequence, or None before the first save."""
    db.connect(reuse_if_open=True)
    with FeedState.bind_ctx(db):
        row = FeedState.get_or_none(FeedState.key == key)
    return int(row.value) if row is not None else None


def save_sequence(db: Database, sequence: int, key: str = LAST_SEQUENCE) -> None:
    """Store `sequence` under `key` (insert or replace)."""
    now = dt.datetime.now(dt.UTC)
    db.connect(reuse_if_open=True)
    with FeedState.bind_ctx(db), write_transaction(db):
        (
            FeedState.insert(key=key, value=str(sequence), updated_at=now)
            .on_conflict(
                conflict_target=[FeedState.key],
                update={FeedState.value: str(sequence), FeedState.updated_at: now},
            )
            .execute()
        )
