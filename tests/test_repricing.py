"""zKillboard reprices a mail and R2Z2 republishes it with `sequence_updated`: the stored
value and zkb block follow, and the mail's periods are aggregated again."""

from __future__ import annotations

from reference_stats import envelope

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.library import maybe_persist_killmail
from wn_persist_plugin.statistics import queries as sq
from wn_persist_plugin.statistics.aggregation import aggregate

TRACKED = 9001


def mail(value: str, **extra):
    env = envelope(7, "2026-11-01T10:00:00Z", attackers=[TRACKED, None], value=value)
    return {**env, "sequence_id": 90_000_000, **extra}


def stored():
    row = Involvement.get()
    return row.total_value, row.zkb_data["totalValue"], row.processed_at


def daily_isk(db):
    return sq.character_periods(db, TRACKED, "daily")[0]["isk_destroyed"]


def test_a_repriced_republication_updates_the_value_and_its_statistics(db):
    assert maybe_persist_killmail(mail("1000.00"), tracked={TRACKED: "me"}).rows == 1
    aggregate(db)
    assert daily_isk(db) == 1000
    first = stored()
    again = mail("2500.00", sequence_id=90_000_060, sequence_updated=90_000_060)
    assert maybe_persist_killmail(again, tracked={TRACKED: "me"}).status == "stored"
    value, zkb_value, processed_at = stored()
    assert value == 2500 and float(zkb_value) == 2500
    assert processed_at > first[2]  # marks the mail's periods for re-aggregation
    aggregate(db)
    assert daily_isk(db) == 2500
    assert Involvement.select().count() == 1


def test_a_plain_redelivery_never_replaces_a_value(db):
    maybe_persist_killmail(mail("1000.00"), tracked={TRACKED: "me"})
    first = stored()
    maybe_persist_killmail(mail("2500.00"), tracked={TRACKED: "me"})
    assert stored() == first


def test_the_same_price_republished_changes_nothing(db):
    maybe_persist_killmail(mail("1000.00"), tracked={TRACKED: "me"})
    first = stored()
    maybe_persist_killmail(mail("1000.00", sequence_updated=1), tracked={TRACKED: "me"})
    assert stored() == first
