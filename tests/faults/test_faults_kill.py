"""SIGKILL at random moments (seeded: see the session header to replay): five times while
`wn-persist run` ingests the real corpus, five times during `wn-persist aggregate
--rebuild` over >= 200,000 involvement rows. Afterwards every expected row is stored
once and the statistics equal a clean build."""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest
from fakes.r2z2 import FakeR2Z2

from faults.faultkit import (
    FIRST,
    clean_env,
    compare_rows,
    expected_rows,
    feed_env,
    position,
    query,
    record,
    statistics_rows,
    stop,
    stored_rows,
    tracked_of,
    wait_until,
    wipe_statistics,
)
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import is_postgres, open_database, write_transaction
from wn_persist_plugin.ingest.rows import involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as killmail

KILLS = 5
REBUILD_ROWS = 200_000


@pytest.fixture(scope="module")
def mails(real_envelopes):
    """150 ordinary real mails (no giant fleet fights: reading them takes ~8 s at 19 req/s,
    longer than the five killed runs can read)."""
    return [m for m in real_envelopes if len(m["esi"]["attackers"]) < 300][:150]


def started(proc) -> bool:
    err = proc.err
    return "first start: reading" in err or "resuming the R2Z2 feed" in err


def test_sigkill_during_ingest(backend, fresh_url, procs, rng, mails):
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    outcome = record(f"SIGKILL x{KILLS} during ingest [{backend}]", expected=len(expected))
    with FakeR2Z2(mails, first=FIRST) as feed:
        feed.reported_latest = FIRST
        env = feed_env(fresh_url, feed.url, tracked, R2Z2_REQUESTS_PER_SECOND="19")
        for n in range(KILLS):
            proc = procs.start(["run"], env, name=f"killed{n}")
            wait_until(lambda: started(proc), 30, "the feed to start", proc)  # noqa: B023
            time.sleep(rng.uniform(0.2, 1.5))
            proc.signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        assert len(set(feed.served())) < len(mails), "the kills came too late to interrupt ingest"
        last = procs.start(["run"], env, name="final")
        head = FakeR2Z2.path(FIRST + len(mails))
        wait_until(lambda: head in feed.paths(), 60, "the head of the feed", last)
        wait_until(lambda: set(stored_rows(fresh_url)) >= expected, 30, "the rows", last)
        code = stop(last)
        outcome.exit_code = str(code)
        outcome.peak = None
    stored = stored_rows(fresh_url)
    compare_rows(outcome, expected, stored)
    assert code == 0, last.err[-3000:]
    assert sorted(stored) == sorted(expected)  # every expected row, each once
    assert position(fresh_url) == FIRST + len(mails) - 1

    aggregated = procs.run(["aggregate"], clean_env(DATABASE_URL=fresh_url))
    assert aggregated.popen.returncode == 0, aggregated.err
    after = statistics_rows(fresh_url)
    assert after, "no statistics"
    wipe_statistics(fresh_url)
    clean = procs.run(["aggregate", "--rebuild"], clean_env(DATABASE_URL=fresh_url))
    assert clean.popen.returncode == 0, clean.err
    assert after == statistics_rows(fresh_url)


COLUMNS = (
    "killmail_id, kill_time, solar_system_id, solar_system_name, region_id, region_name, "
    "total_value, character_role, related_character_id, related_character_name, "
    "ship_type_id, ship_type_name, final_blow, solo, npc, attacker_count, zkb_data, "
    "victim_data, attacker_data, processed_at"
).split(", ")


def _copy_days(db, days: range, processed_at: dt.datetime | None = None) -> None:
    """Copy the `seed` table onto each day of `days` (shifted killmail ids and days)."""
    pg = is_postgres(db)
    p = db.param
    base = dt.date(2026, 1, 1)
    when = (
        f"({p}::date + {p}::int) + kill_time::time"
        if pg
        else f"date({p}, '+' || {p} || ' days') || ' ' || time(kill_time)"
    )
    for k in days:
        select = {c: c for c in COLUMNS}
        select["killmail_id"] = f"killmail_id + {k} * 10000000000"
        select["kill_time"] = when
        select["related_character_id"] = f"related_character_id + {k % 5} * 1000000000000"
        params: list = [base if pg else base.isoformat(), k]
        if processed_at is not None:
            select["processed_at"] = p
            stamp = processed_at.replace(tzinfo=None)
            params.append(stamp if pg else stamp.isoformat(sep=" "))
        with write_transaction(db):
            db.execute_sql(
                f"INSERT INTO killmails ({', '.join(COLUMNS)}) "
                f"SELECT {', '.join(select[c] for c in COLUMNS)} FROM seed",
                params,
            )


def fill_history(url: str, envelopes: list[dict], target: int) -> int:
    """The real corpus with every participant tracked, copied day after day in SQL
    (`INSERT ... SELECT`) until `target` rows; returns the number of days. The `seed`
    table (one copy) stays for `add_day`."""
    db = open_database(url)
    try:
        migrator.migrate(db)
        parsed = [killmail.parse(e) for e in envelopes]
        everyone = {m.victim.character_id for m in parsed if m.victim.character_id}
        everyone |= {a.character_id for m in parsed for a in m.attackers if a.character_id}
        tracked = TrackedSet.of_ids(everyone)
        write_rows(db, [r for m in parsed for r in involvement_rows(m, tracked)])
        with write_transaction(db):
            db.execute_sql("CREATE TABLE seed AS SELECT * FROM killmails")
            db.execute_sql("DELETE FROM killmails")
            db.execute_sql("DELETE FROM statistics_deletions")
        per_copy = db.execute_sql("SELECT COUNT(*) FROM seed").fetchone()[0]
        days = -(-target // per_copy)
        _copy_days(db, range(days))
        db.execute_sql("ANALYZE")
        return days
    finally:
        db.close()


def add_day(url: str, day: int) -> None:
    """One more day of involvements, written now (what the next aggregation must add)."""
    db = open_database(url)
    try:
        _copy_days(db, range(day, day + 1), dt.datetime.now(dt.UTC))
    finally:
        db.close()


def test_sigkill_during_rebuild(backend, fresh_url, procs, rng, real_envelopes):
    """Statistics built, one more day of mails arrives, five `--rebuild` runs are killed,
    then the scheduled (incremental) aggregation runs: the statistics equal a build from
    scratch over the same involvements."""
    days = fill_history(fresh_url, real_envelopes, REBUILD_ROWS)
    env = clean_env(DATABASE_URL=fresh_url)
    built = procs.run(["aggregate"], env, timeout=180)
    assert built.popen.returncode == 0, built.err
    clock = time.monotonic()
    timed = procs.run(["aggregate", "--rebuild"], env, timeout=180)
    seconds = time.monotonic() - clock
    assert timed.popen.returncode == 0, timed.err
    add_day(fresh_url, days)
    total = query(fresh_url, "SELECT COUNT(*) FROM killmails")[0][0]
    assert total >= REBUILD_ROWS
    outcome = record(f"SIGKILL x{KILLS} during --rebuild [{backend}]", expected=total)
    kills = attempts = 0
    while kills < KILLS:
        attempts += 1
        assert attempts <= 2 * KILLS, "the rebuilds keep ending before their kill"
        proc = procs.start(["aggregate", "--rebuild"], env, name=f"rebuild{attempts}")
        time.sleep(rng.uniform(0.2, 0.75) * seconds)
        if not proc.alive():  # finished early (a faster run): a complete rebuild, no kill
            assert proc.popen.returncode == 0, proc.err
            continue
        proc.signal(signal.SIGKILL)
        code = proc.wait(10)
        if code == 0:  # it ended between the check and the signal
            continue
        assert code == -signal.SIGKILL, proc.err
        kills += 1
    final = procs.run(["aggregate"], env, timeout=180)
    outcome.exit_code = str(final.popen.returncode)
    keys = query(fresh_url, "SELECT COUNT(*), COUNT(DISTINCT id) FROM killmails")[0]
    outcome.stored = keys[0]
    outcome.lost = total - keys[1]
    outcome.duplicated = keys[0] - keys[1]
    assert final.popen.returncode == 0, final.err
    assert keys == (total, total)
    after = statistics_rows(fresh_url)
    assert len(after) == len(set(after)), "duplicate statistics rows"

    wipe_statistics(fresh_url)
    scratch = procs.run(["aggregate", "--rebuild"], env, timeout=180)
    assert scratch.popen.returncode == 0, scratch.err
    assert after == statistics_rows(fresh_url)
