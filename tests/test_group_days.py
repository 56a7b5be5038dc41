"""The group's stored days (`group_days`) on both databases: the group statistics read from
them equal the live de-duplication over the stored involvements, over the real corpus,
after incremental ingests, repricing, deletions and retention, and for a mail with
tracked pilots on both sides."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from reference_stats import envelope, store_envelopes

from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import (
    GroupDay,
    Involvement,
    StatisticsRetention,
    StatisticsWatermark,
)
from wn_persist_plugin.statistics import group
from wn_persist_plugin.statistics.aggregation import PERIODS, aggregate
from wn_persist_plugin.statistics.retention import prune

UTC = dt.UTC
PAST = dt.datetime.now(UTC) - dt.timedelta(days=1)
"""`processed_at` for rows written "before" a run (older than the overlap)."""


def later(hours: int = 3) -> dt.datetime:
    """A run "hours from now": every row written so far lies behind its watermark."""
    return dt.datetime.now(UTC) + dt.timedelta(hours=hours)


def _participants(envelopes: list[dict]) -> set[int]:
    ids = set()
    for env in envelopes:
        esi = env["esi"]
        if esi["victim"].get("character_id"):
            ids.add(int(esi["victim"]["character_id"]))
        ids.update(int(a["character_id"]) for a in esi["attackers"] if a.get("character_id"))
    return ids


@pytest.fixture(scope="module")
def tracked(real_envelopes) -> set[int]:
    """A deterministic two thirds of everyone: fleets, both sides and solo pilots occur."""
    return {cid for cid in _participants(real_envelopes) if cid % 3 != 1}


def _days(envelopes: list[dict]) -> list[dt.date]:
    return sorted({dt.date.fromisoformat(e["esi"]["killmail_time"][:10]) for e in envelopes})


def ranges(envelopes: list[dict]) -> list[tuple[dt.date | None, dt.date | None]]:
    """Whole history, open ends, one day, a partial week and month around busy days."""
    days = _days(envelopes)
    mid = days[len(days) // 2]
    return [
        (None, None),
        (mid, None),
        (None, mid),
        (mid, mid),
        (mid - dt.timedelta(days=3), mid + dt.timedelta(days=10)),
        (days[1], days[-2]),
        (dt.date(2001, 1, 1), dt.date(2001, 2, 1)),  # nothing there
    ]


def assert_equal_to_live(db: Any, envelopes: list[dict]) -> None:
    for start, end in ranges(envelopes):
        assert group.group_totals(db, start, end) == group.live_group_totals(db, start, end), (
            start,
            end,
        )
        for period in PERIODS:
            got = group.group_stats(db, period, start, end)
            assert got == group.live_group_stats(db, period, start, end), (period, start, end)


def stored_days() -> dict[dt.date, tuple[int, ...]]:
    return {
        d.day: (
            d.kills,
            d.deaths,
            d.isk_destroyed_cents,
            d.isk_lost_cents,
            d.solo_kills,
            d.final_blows,
            d.npc_deaths,
            d.attackers_on_kills,
        )
        for d in GroupDay.select()
    }


def live_days(db: Any) -> dict[dt.date, tuple[int, ...]]:
    """The live daily group figures in `stored_days`' shape."""
    out = {}
    for row in group.live_group_stats(db, "daily"):
        kills, deaths = row["kills"], row["deaths"]
        attackers = round(row["average_attackers"] * kills) if kills else 0
        out[row["period_start"]] = (
            kills,
            deaths,
            int(row["isk_destroyed"] * 100),
            int(row["isk_lost"] * 100),
            row["solo_kills"],
            row["final_blows"],
            row["npc_deaths"],
            attackers,
        )
    return out


def assert_table_is_live(db: Any) -> None:
    """Every stored day equals the live figures of that day, and no day is missing."""
    stored, live = stored_days(), live_days(db)
    assert set(stored) == set(live)
    for day, figures in live.items():
        assert stored[day][:7] == figures[:7], day
        # the average is rounded: the stored sum must give the same average
        kills = figures[0]
        if kills:
            assert round(stored[day][7] / kills, 2) == round(figures[7] / kills, 2), day


# --- the real corpus -----------------------------------------------------------------


def test_real_corpus_stored_days_equal_live(db, real_envelopes, tracked):
    store_envelopes(db, real_envelopes, tracked, processed_at=PAST)
    before = group.group_stats(db, "monthly")  # no aggregation yet: computed live
    assert before == group.live_group_stats(db, "monthly") and before
    assert GroupDay.select().count() == 0

    result = aggregate(db, now=later())
    daily = next(p for p in result.periods if p.period_type == "daily")
    assert daily.group_days_written == len(live_days(db)) > 100
    assert_table_is_live(db)
    assert_equal_to_live(db, real_envelopes)
    totals = group.group_totals(db)
    assert totals["kills"] > 100 and totals["deaths"] > 50
    assert totals["isk_destroyed"] > 10**11  # the Keepstar, once

    # the answer comes from the stored days: a damaged day shows
    first = min(stored_days())
    GroupDay.update(kills=GroupDay.kills + 1000).where(GroupDay.day == first).execute()
    assert group.group_totals(db)["kills"] == totals["kills"] + 1000
    repaired = aggregate(db, rebuild=True, now=later(4))
    daily = next(p for p in repaired.periods if p.period_type == "daily")
    assert (daily.group_days_written, daily.group_days_deleted) == (1, 0)
    assert group.group_totals(db) == totals
    again = aggregate(db, rebuild=True, now=later(5))
    assert next(p for p in again.periods if p.period_type == "daily").group_days_written == 0


def test_incremental_ingest_and_repricing_stay_equal_to_live(db, real_envelopes, tracked):
    first, second = real_envelopes[::2], real_envelopes[1::2]
    store_envelopes(db, first, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    assert_table_is_live(db)

    # the second half arrives: its days are newer than the stored ones until a run
    store_envelopes(db, second, tracked)
    assert stored_days() != live_days(db)
    assert_equal_to_live(db, real_envelopes)
    result = aggregate(db)
    daily = next(p for p in result.periods if p.period_type == "daily")
    assert daily.mode == "incremental" and daily.group_days_written > 0
    assert_table_is_live(db)
    assert_equal_to_live(db, real_envelopes)

    # repricing: new values with a new processed_at (all rows of the mails)
    mails = sorted({e["killmail_id"] for e in real_envelopes})[::7]
    for i, mail in enumerate(mails):
        Involvement.update(
            total_value=Decimal(f"{1000 + i}.{i % 100:02d}"), processed_at=dt.datetime.now(UTC)
        ).where(Involvement.killmail_id == mail).execute()
    assert_equal_to_live(db, real_envelopes)
    aggregate(db, now=later())
    assert_table_is_live(db)
    assert_equal_to_live(db, real_envelopes)  # from the stored days only


def test_deleted_involvements_leave_the_group_days(db, real_envelopes, tracked):
    store_envelopes(db, real_envelopes, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    # one tracked pilot's involvements go, and every involvement of one day
    pilot = Involvement.select(Involvement.related_character_id).limit(1).scalar()
    Involvement.delete().where(Involvement.related_character_id == pilot).execute()
    day = _days(real_envelopes)[len(_days(real_envelopes)) // 2]
    Involvement.delete().where(
        (Involvement.kill_time >= dt.datetime.combine(day, dt.time(), UTC))
        & (Involvement.kill_time < dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(1))
    ).execute()
    assert day in stored_days()
    assert_equal_to_live(db, real_envelopes)  # the marked days are computed live
    result = aggregate(db, now=later())
    daily = next(p for p in result.periods if p.period_type == "daily")
    assert daily.group_days_deleted >= 1
    assert day not in stored_days()
    assert_table_is_live(db)
    assert_equal_to_live(db, real_envelopes)


def test_retention_keeps_the_pruned_days(db, real_envelopes, tracked):
    store_envelopes(db, real_envelopes, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    whole = {p: group.live_group_stats(db, p) for p in PERIODS}
    totals = group.live_group_totals(db)
    days = _days(real_envelopes)
    now = dt.datetime.combine(days[len(days) // 2], dt.time(12), UTC)
    result = prune(db, 1, now=now)
    assert result.deleted > 0 and result.frozen_before is not None
    cutoff = result.frozen_before
    assert group.live_group_totals(db) != totals  # the involvements are gone ...
    assert group.group_totals(db) == totals  # ... the stored days keep them
    assert {p: group.group_stats(db, p) for p in PERIODS} == whole
    # from the boundary on, the stored and the live figures agree
    for period in PERIODS:
        assert group.group_stats(db, period, cutoff) == group.live_group_stats(db, period, cutoff)

    # the deletion marks of the pruned days change nothing, nor a rebuild, nor a late mail
    late = [e for e in real_envelopes if e["esi"]["killmail_time"][:10] < cutoff.isoformat()]
    late_mail = envelope(9_999_001, late[0]["esi"]["killmail_time"], attackers=[min(tracked)])
    store_envelopes(db, [late_mail], tracked)
    assert group.group_totals(db) == totals
    aggregate(db)
    aggregate(db, rebuild=True)
    assert group.group_totals(db) == totals
    assert {p: group.group_stats(db, p) for p in PERIODS} == whole
    for period in PERIODS:
        assert group.group_stats(db, period, cutoff) == group.live_group_stats(db, period, cutoff)


# --- both sides, fleets --------------------------------------------------------------


def test_both_sides_and_fleets_count_once(db):
    tracked = {1, 2, 3}
    mails = [
        # 1 kills 2: one kill (value once) and one loss for the group
        envelope(100, "2025-06-02T10:00:00Z", victim=2, attackers=[1], value="100.00"),
        # a fleet of three tracked pilots: one kill
        envelope(101, "2025-06-02T11:00:00Z", victim=9, attackers=[1, 2, 3, None], value="7.5"),
        # solo, by a tracked pilot: one solo kill
        envelope(102, "2025-06-09T11:00:00Z", victim=9, attackers=[3], solo=True),
        # an NPC kill of a tracked pilot
        envelope(103, "2025-06-30T23:59:59Z", victim=1, attackers=[None], value="0.01"),
    ]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    totals = group.group_totals(db)
    assert (totals["kills"], totals["deaths"], totals["solo_kills"]) == (3, 2, 1)
    assert totals["npc_deaths"] == 1 and totals["final_blows"] == 3
    assert totals["isk_destroyed"] == Decimal("1107.50")
    assert totals["isk_lost"] == Decimal("100.01")
    assert totals["average_attackers"] == round((1 + 4 + 1) / 3, 2)
    assert totals == group.live_group_totals(db)
    assert stored_days()[dt.date(2025, 6, 2)][:4] == (2, 1, 10750, 10000)
    weeks = group.group_stats(db, "weekly", dt.date(2025, 6, 3), dt.date(2025, 6, 30))
    assert [(w["period_start"], w["kills"], w["deaths"]) for w in weeks] == [
        (dt.date(2025, 6, 9), 1, 0),
        (dt.date(2025, 6, 30), 0, 1),
    ]
    assert weeks == group.live_group_stats(db, "weekly", dt.date(2025, 6, 3), dt.date(2025, 6, 30))

    # the victim side of mail 100 goes: the kill stays, the loss goes
    Involvement.delete().where(
        (Involvement.killmail_id == 100) & (Involvement.character_role == "victim")
    ).execute()
    assert group.group_totals(db)["deaths"] == 1
    assert group.group_totals(db) == group.live_group_totals(db)
    aggregate(db, now=later())
    assert stored_days()[dt.date(2025, 6, 2)][:2] == (2, 0)


# --- the migration -------------------------------------------------------------------


def test_migration_fills_the_days_from_stored_involvements(fresh_url, real_envelopes, tracked):
    db = open_database(fresh_url)
    try:
        # rows stored by the current code, then the schema taken back to before group_days
        migrator.migrate(db)
        store_envelopes(db, real_envelopes[:200], tracked, processed_at=PAST)
        migrator.migrate(db, to=8)
        assert "group_days" not in db.get_tables()
        # as if the previous version had aggregated
        ran = PAST + dt.timedelta(hours=2)
        for period in PERIODS:
            StatisticsWatermark.create(
                period_type=period, changes_since=ran - dt.timedelta(hours=1), last_run_at=ran
            )
        migrator.migrate(db)
        assert_table_is_live(db)
        # later changes are picked up incrementally from the daily watermark
        store_envelopes(db, real_envelopes[200:], tracked)
        assert_equal_to_live(db, real_envelopes)
        aggregate(db, now=later())
        assert_table_is_live(db)
        assert_equal_to_live(db, real_envelopes)
        migrator.migrate(db, to=8)
        assert "group_days" not in db.get_tables()
    finally:
        db.close()


def test_a_mail_stored_on_two_days_is_counted_once(db):
    """One mail, one kill time: the pipeline never writes a mail's rows on different
    days. Should one be stored so, summing days would count it twice; such ranges are
    computed live, before and after the next aggregation."""
    tracked = {1, 2, 3}
    mails = [
        envelope(200, "2025-06-02T23:59:30Z", victim=9, attackers=[1, 2, 3], value="10.00"),
        envelope(201, "2025-06-03T10:00:00Z", victim=1, attackers=[2], value="5.00"),
        envelope(202, "2025-05-20T10:00:00Z", victim=9, attackers=[1], value="1.00"),
    ]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    Involvement.update(
        kill_time=dt.datetime(2025, 6, 3, 0, 0, 10, tzinfo=UTC), processed_at=dt.datetime.now(UTC)
    ).where((Involvement.killmail_id == 200) & (Involvement.related_character_id == 3)).execute()
    june = [(None, None), (dt.date(2025, 6, 2), dt.date(2025, 6, 3)), (dt.date(2025, 6, 3), None)]

    def check(ranges: list) -> None:
        for start, end in ranges:
            assert group.group_totals(db, start, end) == group.live_group_totals(db, start, end)
            for period in PERIODS:
                got = group.group_stats(db, period, start, end)
                assert got == group.live_group_stats(db, period, start, end), (period, start)

    check(june)
    assert group.group_totals(db)["kills"] == 3
    aggregate(db, now=later())
    assert sum(d.split_mails for d in GroupDay.select()) == 1  # the day recomputed
    check(june)
    aggregate(db, rebuild=True, now=later(4))
    assert sum(d.split_mails for d in GroupDay.select()) == 2  # the pair on both days
    check(june)
    assert group.group_totals(db, dt.date(2025, 6, 3), dt.date(2025, 6, 3))["kills"] == 2

    # with a retention boundary: the pruned days keep their figures, the rest is live
    may = group.group_stats(db, "monthly", None, dt.date(2025, 5, 31))
    StatisticsRetention.create(id=1, pruned_before=dt.date(2025, 6, 1), updated_at=PAST)
    Involvement.delete().where(Involvement.killmail_id == 202).execute()
    assert group.group_stats(db, "monthly", None, dt.date(2025, 5, 31)) == may
    assert group.group_totals(db)["kills"] == 3  # 202 kept on its pruned day
    assert group.live_group_totals(db)["kills"] == 2
    check([(dt.date(2025, 6, 1), None), (dt.date(2025, 6, 2), dt.date(2025, 6, 2))])
