"""Retention on both databases: deletes only what the statistics have absorbed, in
batches, keeps statistics, freezes pruned periods, and a dry run changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from reference_stats import envelope, store_envelopes

from wn_persist_plugin.db.models import Involvement, KillmailStatistics, StatisticsRetention
from wn_persist_plugin.statistics.aggregation import aggregate
from wn_persist_plugin.statistics.retention import cutoff_day, prune

UTC = dt.UTC
NOW = dt.datetime(2025, 7, 1, 5, 0, tzinfo=UTC)
DAYS = 30  # cutoff: 2025-06-01
PAST = dt.datetime.now(UTC) - dt.timedelta(days=1)
TRACKED = {1, 2}


def figures() -> dict:
    return {
        (s.period_type, s.period_start, s.character_id): (
            s.kills_count,
            s.deaths_count,
            s.isk_destroyed,
        )
        for s in KillmailStatistics.select()
    }


def kill_ids() -> set[int]:
    return {k.killmail_id for k in Involvement.select(Involvement.killmail_id)}


@pytest.fixture
def history(db):
    mails = [
        envelope(1, "2025-05-20T10:00:00Z", attackers=[1]),
        envelope(2, "2025-05-31T23:59:59Z", attackers=[1], victim=2),
        envelope(3, "2025-06-01T00:00:00Z", attackers=[1]),
        envelope(4, "2025-06-15T00:00:00Z", victim=1, attackers=[2]),
    ]
    store_envelopes(db, mails, TRACKED, processed_at=PAST)
    return db


def test_cutoff_is_a_utc_day():
    assert cutoff_day(DAYS, NOW) == dt.date(2025, 6, 1)
    # 01:00 at +03:00 on 1 July is still 30 June in UTC: June is the open month
    assert cutoff_day(
        1, dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    ) == (dt.date(2025, 6, 1))


def test_cutoff_never_cuts_into_an_open_week_or_month():
    wednesday = dt.datetime(2025, 6, 25, 12, 0, tzinfo=UTC)
    assert cutoff_day(7, wednesday) == dt.date(2025, 6, 1)  # June is still open
    # 3 July: the week that started Monday 30 June is open and reaches into June
    assert cutoff_day(1, dt.datetime(2025, 7, 3, tzinfo=UTC)) == dt.date(2025, 6, 30)
    assert cutoff_day(1, dt.datetime(2025, 7, 9, tzinfo=UTC)) == dt.date(2025, 7, 1)
    assert cutoff_day(400, wednesday) == dt.date(2024, 5, 21)


def test_short_retention_keeps_counting_the_current_month(db):
    store_envelopes(
        db,
        [
            envelope(11, "2025-06-10T10:00:00Z", attackers=[1]),
            envelope(12, "2025-06-20T10:00:00Z", attackers=[1]),
        ],
        TRACKED,
        processed_at=PAST,
    )
    aggregate(db)
    wednesday = dt.datetime(2025, 6, 25, 12, 0, tzinfo=UTC)
    assert prune(db, 7, now=wednesday).deleted == 0  # both lie in the open month
    store_envelopes(db, [envelope(13, "2025-06-25T11:00:00Z", attackers=[1])], TRACKED)
    aggregate(db)
    june = KillmailStatistics.get(
        KillmailStatistics.period_type == "monthly", KillmailStatistics.character_id == 1
    )
    assert june.kills_count == 3
    # once June is over (and a later run has absorbed the last mail), a 7-day retention
    # deletes June's mails and keeps its figures
    aggregate(db, now=dt.datetime.now(UTC) + dt.timedelta(hours=2))
    result = prune(db, 7, now=dt.datetime(2025, 7, 9, tzinfo=UTC))
    assert result.deleted == 3 and kill_ids() == set()
    aggregate(db, rebuild=True)
    june = KillmailStatistics.get(
        KillmailStatistics.period_type == "monthly", KillmailStatistics.character_id == 1
    )
    assert june.kills_count == 3


def test_nothing_goes_before_the_first_aggregation(history):
    result = prune(history, DAYS, now=NOW)
    assert result.deleted == 0 and result.blocked == 3
    assert kill_ids() == {1, 2, 3, 4}


def test_prune_after_aggregation_keeps_statistics(history):
    aggregate(history)
    before = figures()
    dry = prune(history, DAYS, now=NOW, dry_run=True)
    assert (dry.deleted, dry.blocked, dry.dry_run) == (3, 0, True)  # two rows of mail 2
    assert kill_ids() == {1, 2, 3, 4}
    assert StatisticsRetention.select().count() == 0

    result = prune(history, DAYS, now=NOW, batch_size=2)
    assert (result.deleted, result.batches) == (3, 2)
    assert result.frozen_before == dt.date(2025, 6, 1)
    assert kill_ids() == {3, 4}
    assert figures() == before  # statistics rows kept, untouched by the deletes

    # later runs, even a rebuild, keep the pruned periods' figures
    aggregate(history)
    aggregate(history, rebuild=True)
    assert figures() == before
    assert StatisticsRetention.get().pruned_before == dt.date(2025, 6, 1)


def test_unaggregated_row_in_a_shared_period_holds_retention_back(history):
    aggregate(history)
    # a late mail in the same week (Mon 2025-05-26..Sun 06-01) arrives after the run
    store_envelopes(history, [envelope(5, "2025-06-01T08:00:00Z", attackers=[1])], TRACKED)
    waiting = prune(history, DAYS, now=NOW)
    assert waiting.deleted == 0 and waiting.blocked == 1
    assert kill_ids() == {1, 2, 3, 4, 5}

    aggregate(history, now=dt.datetime.now(UTC) + dt.timedelta(hours=2))
    week = ("weekly", dt.date(2025, 5, 26), 1)
    assert figures()[week][0] == 3  # mails 2, 3 and 5
    done = prune(history, DAYS, now=NOW)
    assert done.deleted == 3 and done.blocked == 0
    assert figures()[week][0] == 3


def test_late_mail_in_a_frozen_period_is_dropped_not_counted(history):
    aggregate(history)
    prune(history, DAYS, now=NOW)
    before = figures()
    # a mail from May arrives after May was pruned: its periods are frozen
    store_envelopes(history, [envelope(6, "2025-05-10T08:00:00Z", attackers=[1])], TRACKED)
    aggregate(history, now=dt.datetime.now(UTC) + dt.timedelta(hours=2))
    assert figures() == before
    result = prune(history, DAYS, now=NOW)
    assert (result.deleted, result.late_dropped, result.blocked) == (1, 1, 0)
    assert kill_ids() == {3, 4}


def test_bad_retention_days(history):
    with pytest.raises(ValueError):
        prune(history, 0)
