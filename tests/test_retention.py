"""Retention on both databases: deletes only what the statistics have absorbed, in
batches, keeps statistics, freezes pruned periods, and a dry run changes nothing."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from click.testing import CliRunner
from reference_stats import envelope, store_envelopes

from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.cli import main
from wn_persist_plugin.db.models import Involvement, KillmailStatistics, StatisticsRetention
from wn_persist_plugin.db.status import late_dropped_total
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


def test_late_mail_in_a_frozen_period_is_dropped_not_counted(history, db_url, caplog, monkeypatch):
    aggregate(history)
    first = prune(history, DAYS, now=NOW)
    assert first.late_dropped == first.late_dropped_total == 0
    assert late_dropped_total(history) == 0
    before = figures()
    # mails from May arrive after May was pruned: their periods are frozen
    late = [envelope(kid, "2025-05-10T08:00:00Z", attackers=[1]) for kid in (7, 6, 8)]
    store_envelopes(history, late, TRACKED)
    aggregate(history, now=dt.datetime.now(UTC) + dt.timedelta(hours=2))
    assert figures() == before
    with caplog.at_level(logging.WARNING, logger="wn_persist_plugin.statistics.retention"):
        result = prune(history, DAYS, now=NOW)
    assert (result.deleted, result.late_dropped, result.blocked) == (3, 3, 0)
    assert result.first_late_killmail == 6 and result.late_dropped_total == 3
    assert kill_ids() == {3, 4}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line for the run, not one per mail
    assert "killmail 6 and 2 more late involvements" in warnings[0]
    # the running total is stored, for `db status` and the metrics
    assert late_dropped_total(history) == 3
    store_envelopes(history, [envelope(9, "2025-05-11T08:00:00Z", attackers=[1])], TRACKED)
    aggregate(history, now=dt.datetime.now(UTC) + dt.timedelta(hours=3))
    again = prune(history, DAYS, now=NOW)
    assert (again.late_dropped, again.late_dropped_total) == (1, 4)
    assert late_dropped_total(history) == 4
    # ... read at scrape time by the metrics, and shown by `db status`
    registry = make_registry(history)
    assert registry.get_sample_value("wn_persist_retention_late_dropped_total") == 4
    monkeypatch.setenv("DATABASE_URL", db_url)
    out = CliRunner().invoke(main, ["db", "status"])
    assert out.exit_code == 0, out.output
    assert "dropped late:" in out.output
    line = next(x for x in out.output.splitlines() if x.startswith("dropped late:"))
    assert line.split(":", 1)[1].split()[0] == "4"


def test_no_late_drop_metric_before_the_first_prune(db):
    assert late_dropped_total(db) is None
    assert make_registry(db).get_sample_value("wn_persist_retention_late_dropped_total") is None


def test_bad_retention_days(history):
    with pytest.raises(ValueError):
        prune(history, 0)
