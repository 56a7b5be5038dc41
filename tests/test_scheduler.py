"""The scheduler thread and the cross-process job lock, on both databases, with real
processes for the lock."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from reference_stats import envelope, store_envelopes

from wn_persist_plugin.db.joblock import job_lock
from wn_persist_plugin.db.models import Involvement, KillmailStatistics
from wn_persist_plugin.errors import ConfigError, JobBusy
from wn_persist_plugin.settings import Settings, load_settings
from wn_persist_plugin.statistics.aggregation import aggregate
from wn_persist_plugin.statistics.scheduler import Scheduler

UTC = dt.UTC
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings_for(url: str, schedule: str = "0 0 * * *", days: int = 30) -> Settings:
    return load_settings(
        overrides={
            "DATABASE_URL": url,
            "PERSISTENCE_AGGREGATION_SCHEDULE": schedule,
            "PERSISTENCE_RETENTION_DAYS": days,
        },
        environ={},
    )


def always_second_59() -> dt.datetime:
    """A clock that is always one second before a full minute: `* * * * *` fires ~1 s on."""
    return dt.datetime.now(UTC).replace(second=59)


def test_run_now_enriches_then_aggregates_then_prunes(db, db_url):
    old = (dt.datetime.now(UTC) - dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = (dt.datetime.now(UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = dt.datetime.now(UTC) - dt.timedelta(days=1)
    store_envelopes(
        db,
        [envelope(1, old, attackers=[7]), envelope(2, new, attackers=[7])],
        {7},
        processed_at=past,
    )
    seen = []

    def enrich(database):
        seen.append(KillmailStatistics.select().count())
        Involvement.update(region_id=10000002, processed_at=past).execute()

    scheduler = Scheduler(settings_for(db_url), db, before_aggregation=[enrich])
    report = scheduler.run_now()
    assert report.ok and not report.skipped
    assert seen == [0]  # enrichment ran before any statistics existed
    assert report.aggregate.rows_written == 6
    assert report.prune.deleted == 1
    assert {k.killmail_id for k in Involvement.select()} == {2}
    assert all(s.region_activity == {"10000002": 1} for s in KillmailStatistics.select())
    assert KillmailStatistics.select().count() == 6  # statistics of the pruned mail kept


def test_failing_job_is_logged_and_retried_and_the_thread_survives(db, db_url, caplog):
    calls = []

    def flaky(database):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("ESI is down")

    scheduler = Scheduler(
        settings_for(db_url, "* * * * *"), db, before_aggregation=[flaky], clock=always_second_59
    )
    scheduler.start()
    scheduler.start()  # already running: no second thread
    try:
        deadline = time.monotonic() + 20
        while scheduler.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler.runs >= 2, "the job did not run twice"
        assert scheduler.failures == 1
        assert scheduler.running
        assert scheduler.last_report and scheduler.last_report.ok
        assert "step flaky failed; aggregating anyway" in caplog.text
        assert "ESI is down" in caplog.text
    finally:
        assert scheduler.stop(10)
    assert not scheduler.running


def test_a_failing_step_does_not_stop_aggregation_or_retention(db, db_url):
    store_envelopes(db, [envelope(1, "2025-01-01T10:00:00Z", attackers=[1])], {1})

    def broken(database):
        raise KeyError("system_id")

    report = Scheduler(settings_for(db_url), db, before_aggregation=[broken]).run_now()
    assert not report.ok and "broken: KeyError" in report.error
    assert report.aggregate is not None and report.aggregate.rows_written == 3
    assert report.prune is not None


def test_next_fire_time_comes_from_the_cron_expression_in_utc(db, db_url):
    daily = Scheduler(settings_for(db_url, "0 0 * * *"), db)
    assert daily.fire_after(dt.datetime(2025, 3, 2, 23, 59, 59, tzinfo=UTC)) == dt.datetime(
        2025, 3, 3, tzinfo=UTC
    )
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert daily.fire_after(dt.datetime(2025, 3, 3, 1, 0, tzinfo=plus2)) == dt.datetime(
        2025, 3, 3, tzinfo=UTC
    )
    weekly = Scheduler(settings_for(db_url, "30 6 * * 1"), db)
    assert weekly.fire_after(dt.datetime(2024, 2, 29, tzinfo=UTC)) == dt.datetime(
        2024, 3, 4, 6, 30, tzinfo=UTC
    )
    assert daily.stop() is True  # never started


def test_invalid_cron_stops_startup(db):
    with pytest.raises(ConfigError) as info:
        Scheduler(settings_for("sqlite:///unused.db", "61 * * * *"), db)
    assert "PERSISTENCE_AGGREGATION_SCHEDULE" in str(info.value)
    assert "\n" not in str(info.value)


# --- several processes on one database ------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from wn_persist_plugin.db.connect import open_database
    from wn_persist_plugin.db.joblock import job_lock
    db = open_database(sys.argv[1])
    with job_lock(db, wait=30):
        print("locked", flush=True)
        sys.stdin.read()
    """
)

RUNNER = textwrap.dedent(
    """
    import json, sys, time
    from wn_persist_plugin.settings import load_settings
    from wn_persist_plugin.db.connect import open_database
    from wn_persist_plugin.statistics.scheduler import Scheduler
    url, log, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    db = open_database(url)
    spans = []
    def slow(database):
        start = time.time()
        time.sleep(0.15)
        spans.append((start, time.time()))
    settings = load_settings(overrides={"DATABASE_URL": url}, environ={})
    scheduler = Scheduler(settings, db, before_aggregation=[slow])
    ran = skipped = 0
    end = time.time() + seconds
    while time.time() < end:
        report = scheduler.run_now()
        assert report.ok, report.error
        skipped += report.skipped
        ran += not report.skipped
        time.sleep(0.01)
    with open(log, "a") as fh:
        fh.write(json.dumps({"ran": ran, "skipped": skipped, "spans": spans}) + "\\n")
    """
)


def _spawn(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_lock_held_by_another_process_blocks_the_job(db, db_url):
    holder = _spawn(HOLDER, db_url, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(JobBusy):
            with job_lock(db, wait=0):
                pass
        with pytest.raises(JobBusy):
            aggregate(db)
        report = Scheduler(settings_for(db_url), db).run_now()
        assert report.skipped and report.ok
        assert KillmailStatistics.select().count() == 0
    finally:
        holder.kill()  # dies holding the lock: the OS / server must release it
        holder.wait(10)
    with job_lock(db, wait=10):
        pass
    report = Scheduler(settings_for(db_url), db).run_now()
    assert not report.skipped and report.ok


def test_two_processes_never_run_the_job_at_once(db, db_url, tmp_path):
    log = tmp_path / "runs.jsonl"
    procs = [_spawn(RUNNER, db_url, str(log), "3") for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    results = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(results) == 2
    spans = sorted((s, e, i) for i, r in enumerate(results) for s, e in r["spans"])
    for (_s1, e1, p1), (s2, _e2, p2) in zip(spans, spans[1:], strict=False):
        assert s2 >= e1, f"process {p1} and {p2} ran the job at the same time"
    assert sum(r["ran"] for r in results) >= 2
    assert sum(r["skipped"] for r in results) >= 1


def test_an_early_wake_up_only_rearms(db, db_url):
    moments = iter([dt.datetime(2025, 3, 30, 22, 0, tzinfo=UTC)] * 3)
    scheduler = Scheduler(settings_for(db_url, "0 0 * * *"), db, clock=lambda: next(moments))
    scheduler.next_fire = dt.datetime(2025, 3, 30, 23, 0, tzinfo=UTC)
    scheduler._fire()  # woken an hour early (as after a DST jump): the job does not run
    assert scheduler.runs == 0
    assert scheduler.next_fire == dt.datetime(2025, 3, 31, tzinfo=UTC)


def test_a_tick_runs_the_job_once_across_instances(db, db_url):
    """Two schedulers on one database fire for the same tick one after the other: the
    second finds the lock free but the tick already served, and skips."""
    settings = load_settings(
        environ={"DATABASE_URL": db_url, "PERSISTENCE_ESI_ENRICHMENT": "false"},
        dotenv=Path("/nonexistent/.env"),
    )
    tick = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = Scheduler(settings, db).run_now(tick)
    second = Scheduler(settings, db).run_now(tick)
    assert first.ok and not first.skipped and first.aggregate is not None
    assert second.skipped and second.aggregate is None
    later = Scheduler(settings, db).run_now(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert not later.skipped and later.aggregate is not None
