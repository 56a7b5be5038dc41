"""`killmails.processed_at` (the change marker) is the time of the write, not the time
the row was built: buffered or retried rows still reach the next incremental run."""

from __future__ import annotations

import dataclasses
import datetime as dt

from reference_stats import envelope

from wn_persist_plugin.db.models import Involvement, KillmailStatistics
from wn_persist_plugin.ingest import store
from wn_persist_plugin.ingest.backfill import Backfill, Item
from wn_persist_plugin.ingest.rows import InvolvementRow, involvement_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as km
from wn_persist_plugin.statistics.aggregation import aggregate

UTC = dt.UTC
TRACKED = 9001


def test_write_stamps_processed_at_rows_cannot_carry_one(db):
    rows = involvement_rows(
        km.parse(envelope(1, "2026-11-01T10:00:00Z", attackers=[TRACKED])),
        TrackedSet.of_ids([TRACKED]),
    )
    assert "processed_at" not in {f.name for f in dataclasses.fields(InvolvementRow)}
    before = dt.datetime.now(UTC).replace(microsecond=0)
    assert not store.write_rows(db, rows).failed
    stamps = [r.processed_at for r in Involvement.select()]
    assert stamps and all(before <= s <= dt.datetime.now(UTC) for s in stamps)


def test_write_uses_the_given_time(db):
    rows = involvement_rows(
        km.parse(envelope(1, "2026-11-01T10:00:00Z", attackers=[TRACKED])),
        TrackedSet.of_ids([TRACKED]),
    )
    fixed = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    store.write_rows(db, rows, now=fixed)
    assert [r.processed_at for r in Involvement.select()] == [fixed]


def test_rows_committed_long_after_they_were_built_are_aggregated(db, monkeypatch):
    t0 = dt.datetime.now(UTC)
    backfill = Backfill(db, TrackedSet.of_ids([TRACKED]))
    backfill.feed(Item("f", "line 1", envelope(1, "2026-11-01T10:00:00Z", attackers=[TRACKED])))
    assert Involvement.select().count() == 0  # still in the backfill's buffer
    aggregate(db, now=t0 + dt.timedelta(hours=2))  # a scheduled run meanwhile
    # The buffer is committed after that run (the clock of the write moved on as well).
    monkeypatch.setattr(
        store, "_utcnow", lambda: t0 + dt.timedelta(hours=2, minutes=1), raising=False
    )
    backfill.flush()
    assert Involvement.select().count() == 1
    result = aggregate(db, now=t0 + dt.timedelta(hours=3))
    assert {p.mode for p in result.periods} == {"incremental"}
    stats = {(s.period_type, s.kills_count) for s in KillmailStatistics.select()}
    assert stats == {("daily", 1), ("weekly", 1), ("monthly", 1)}
