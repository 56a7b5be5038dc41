"""The same involvement twice in one batch (a redelivery while queued) is written in one
go, keeping the row that has a value."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from reference_stats import envelope

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.rows import InvolvementRow, involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as km

TRACKED = 9001


def rows(killmail_id: int, value=None) -> list[InvolvementRow]:
    mail = envelope(killmail_id, "2026-11-01T10:00:00Z", victim=1, attackers=[TRACKED], value=value)
    return involvement_rows(km.parse(mail), TrackedSet.of_ids([TRACKED]))


@pytest.mark.parametrize("value_first", [False, True])
def test_duplicate_keys_in_one_batch_written_at_once_with_the_value(db, caplog, value_first):
    caplog.set_level(logging.DEBUG, logger="wn_persist_plugin.ingest.store")
    without, with_value = rows(1), rows(1, value=5)
    batch = rows(2) + (with_value + without if value_first else without + with_value) + rows(3)
    result = write_rows(db, batch)
    assert result.rows == 4 and not result.failed
    assert not [r for r in caplog.records if "row by row" in r.getMessage()]
    stored = {r.killmail_id: r.total_value for r in Involvement.select()}
    assert stored == {1: Decimal("5.00"), 2: None, 3: None}
    assert Involvement.select().count() == 3


def test_first_value_kept_as_the_database_would(db):
    write_rows(db, rows(1, value=5) + rows(1, value=7))
    assert Involvement.get().total_value == Decimal("5.00")
