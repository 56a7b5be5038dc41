"""Benchmark: statistics aggregation over >= 1,000,000 involvement rows, on SQLite and
PostgreSQL, against one hand-written GROUP BY query over the same rows in the same run.

History: the 529 real killmails with every participant tracked (10,782 involvement rows),
regions filled from the universe tables, replayed day after day in SQL (`INSERT ...
SELECT`) with shifted killmail ids, kill times moved to consecutive days (time of day
kept), character ids shifted among five groups of pilots (so a character is active every
fifth day) and each pilot alternating between two hulls from one active day to the next
(so weeks and months have several ships, as real pilots' do).

Timed, per database (ratios against the baseline of the same run):
- baseline: one hand-written GROUP BY over all involvement rows computing the daily core
  figures per character (kills, deaths, exact ISK destroyed and lost, solo, final blows,
  npc deaths; no ship or region maps), materialized into a temp table so that it pays for
  writing its result too. It runs with the settings under which it was fastest: on SQLite
  with the page cache the aggregation uses (the cache bounds in-memory sorting), on
  PostgreSQL with the server defaults (parallel hashed grouping; the aggregation's 64 MB
  work_mem made it slower); best of three;
- the first aggregation (a full build: all three period types, all figures, ship and
  region JSON, upsert);
- `--rebuild` over unchanged data: all three period types in one run, then each period
  type alone (best of two);
- the floor any rebuild pays: offering every stored statistics row to the unique key
  (`INSERT ... ON CONFLICT DO NOTHING` of a copy; nothing computed or written);
- an incremental run after one new day of mails.

Usage: python bench/bench_aggregate.py [--rows 1000000] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import DATA_DIR, KILLMAIL_COLUMNS, database_urls, real_envelopes  # noqa: E402

from wn_persist_plugin.db import migrator  # noqa: E402
from wn_persist_plugin.db.connect import is_postgres, open_database, write_transaction  # noqa: E402
from wn_persist_plugin.enrichment import fill as enrichment  # noqa: E402
from wn_persist_plugin.enrichment import static_data as universe  # noqa: E402
from wn_persist_plugin.ingest import rows as involvement  # noqa: E402
from wn_persist_plugin.ingest import store  # noqa: E402
from wn_persist_plugin.ingest.tracked import TrackedSet  # noqa: E402
from wn_persist_plugin.killmails import parse as killmail  # noqa: E402
from wn_persist_plugin.statistics import aggregation  # noqa: E402

COLUMNS = KILLMAIL_COLUMNS
GROUPS = 5
BASE_DAY = dt.date(2026, 1, 1)
HISTORY_PROCESSED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def seed(db) -> int:
    """The real corpus as involvement rows in a `seed` table; returns its row count."""
    mails = [killmail.parse(e) for e in real_envelopes()]
    everyone: set[int] = set()
    for mail in mails:
        if mail.victim.character_id:
            everyone.add(mail.victim.character_id)
        everyone.update(a.character_id for a in mail.attackers if a.character_id)
    tracked = TrackedSet.of_ids(everyone)
    rows = [r for m in mails for r in involvement.involvement_rows(m, tracked)]
    store.write_rows(db, rows)
    # regions (and names) as the writer's row filler and enrichment fill them in
    universe.import_directory(db, DATA_DIR / "universe")
    enrichment.fill_from_tables(db)
    db.execute_sql("CREATE TABLE seed AS SELECT * FROM killmails")
    db.execute_sql("DELETE FROM killmails")
    db.execute_sql("DELETE FROM statistics_deletions")
    return len(rows)


def replay_day(db, k: int, processed_at: dt.datetime) -> None:
    """One more day of history: copy k of the corpus on BASE_DAY + k."""
    pg = is_postgres(db)
    p = db.param
    when = (
        f"({p}::date + {p}::int) + kill_time::time"
        if pg
        else f"date({p}, '+' || {p} || ' days') || ' ' || time(kill_time)"
    )
    stamp = processed_at.replace(tzinfo=None)
    select = {c: c for c in COLUMNS}
    select["killmail_id"] = f"killmail_id + {k} * 10000000000"
    select["kill_time"] = when
    select["related_character_id"] = f"related_character_id + {k % GROUPS} * 1000000000000"
    # a pilot alternates between two hulls from one active day to the next
    select["ship_type_id"] = f"ship_type_id + {(k // GROUPS) % 2}"
    select["processed_at"] = p
    db.execute_sql(
        f"INSERT INTO killmails ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(select[c] for c in COLUMNS)} FROM seed",
        [BASE_DAY if pg else BASE_DAY.isoformat(), k, stamp if pg else stamp.isoformat(sep=" ")],
    )


def baseline_sql(db) -> str:
    pg = is_postgres(db)
    value = (
        "COALESCE(total_value, 0)"
        if pg
        else "COALESCE(CAST(ROUND(total_value * 100) AS INTEGER), 0)"
    )
    day = "kill_time::date" if pg else "date(kill_time)"
    return f"""
CREATE TEMP TABLE baseline AS
SELECT related_character_id, {day} AS day,
       SUM(CASE WHEN character_role = 'attacker' THEN 1 ELSE 0 END) AS kills,
       SUM(CASE WHEN character_role = 'victim' THEN 1 ELSE 0 END) AS deaths,
       SUM(CASE WHEN character_role = 'attacker' THEN {value} ELSE 0 END) AS destroyed,
       SUM(CASE WHEN character_role = 'victim' THEN {value} ELSE 0 END) AS lost,
       SUM(CASE WHEN character_role = 'attacker' AND solo THEN 1 ELSE 0 END) AS solo_kills,
       SUM(CASE WHEN character_role = 'attacker' AND final_blow THEN 1 ELSE 0 END) AS fb,
       SUM(CASE WHEN character_role = 'victim' AND npc THEN 1 ELSE 0 END) AS npc_deaths
FROM killmails GROUP BY related_character_id, {day}
"""


def timed_once(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(name: str, url: str, target_rows: int) -> dict[str, float]:
    db = open_database(url)
    migrator.migrate(db)
    db.connect(reuse_if_open=True)
    per_copy = seed(db)
    copies = -(-target_rows // per_copy)
    gen, _ = timed_once(lambda: _generate(db, copies))
    total = db.execute_sql("SELECT COUNT(*) FROM killmails").fetchone()[0]
    db.execute_sql("ANALYZE")
    print(
        f"[{name}] {total:,} involvement rows ({copies} days x {per_copy:,}), "
        f"generated in {gen:.1f}s"
    )

    def baseline() -> int:
        db.execute_sql("DROP TABLE IF EXISTS baseline")
        if not is_postgres(db):
            # the page cache bounds SQLite's in-memory sorting; the aggregation's helps
            cache = getattr(aggregation, "SQLITE_CACHE_KIB", 256 * 1024)
            db.execute_sql(f"PRAGMA cache_size = -{cache}")
        # PostgreSQL: server defaults (the aggregation's work_mem made this plan slower)
        db.execute_sql(baseline_sql(db))
        if not is_postgres(db):
            db.execute_sql("PRAGMA cache_size = -2000")  # SQLite's default
        return db.execute_sql("SELECT COUNT(*) FROM baseline").fetchone()[0]

    base_times = []
    for _ in range(3):
        seconds, groups = timed_once(baseline)
        base_times.append(seconds)
    base = min(base_times)
    print(f"[{name}] baseline GROUP BY (daily core figures, {groups:,} groups): {base:.2f}s")

    first, res = timed_once(lambda: aggregation.aggregate(db))
    stats_rows = db.execute_sql("SELECT COUNT(*) FROM killmail_statistics").fetchone()[0]
    parts = ", ".join(f"{p.period_type} {p.seconds:.2f}s" for p in res.periods)
    print(
        f"[{name}] first aggregation (build, 3 period types): {first:.2f}s "
        f"= {first / base:.2f}x baseline ({parts}; {stats_rows:,} statistics rows)"
    )
    daily = res.periods[0].seconds
    print(f"[{name}]   daily alone: {daily:.2f}s = {daily / base:.2f}x baseline")

    rebuild, res = timed_once(lambda: aggregation.aggregate(db, rebuild=True))
    parts = ", ".join(f"{p.period_type} {p.seconds:.2f}s" for p in res.periods)
    print(
        f"[{name}] --rebuild (unchanged data): {rebuild:.2f}s = {rebuild / base:.2f}x "
        f"baseline; a third of it {rebuild / 3 / base:.2f}x ({parts}; "
        f"{res.rows_written} rows changed)"
    )

    def rebuild_one(period_type: str) -> object:
        return aggregation.aggregate(db, periods=[period_type], rebuild=True)

    for period_type in aggregation.PERIODS:
        alone = min(timed_once(lambda: rebuild_one(period_type))[0] for _ in range(2))  # noqa: B023
        print(f"[{name}]   --rebuild {period_type} alone: {alone:.2f}s = {alone / base:.2f}x")

    floor = min(conflict_check(db) for _ in range(2))
    print(
        f"[{name}] floor: checking the {stats_rows:,} stored rows against the unique key "
        f"alone (INSERT ... ON CONFLICT DO NOTHING of a copy): {floor:.2f}s "
        f"= {floor / base:.2f}x baseline"
    )

    with write_transaction(db):
        replay_day(db, copies, dt.datetime.now(dt.UTC))
    incr, res = timed_once(lambda: aggregation.aggregate(db))
    examined = ", ".join(f"{p.period_type} {p.periods_examined:,}" for p in res.periods)
    print(
        f"[{name}] incremental after one new day ({per_copy:,} rows): {incr:.2f}s "
        f"= {incr / base:.2f}x baseline (periods examined: {examined}; "
        f"{res.rows_written:,} rows written)"
    )
    db.close()
    return {"baseline": base, "build": first, "rebuild": rebuild, "incremental": incr}


def conflict_check(db) -> float:
    """What any rebuild pays at least: every statistics row offered to the upsert finds
    its stored row through the unique key (no figures computed, nothing written)."""
    db.execute_sql("DROP TABLE IF EXISTS stats_copy")
    db.execute_sql("CREATE TEMP TABLE stats_copy AS SELECT * FROM killmail_statistics")
    with db.atomic() as transaction:
        start = time.perf_counter()
        db.execute_sql(
            "INSERT INTO killmail_statistics SELECT * FROM stats_copy WHERE true"
            " ON CONFLICT (character_id, period_type, period_start) DO NOTHING"
        )
        seconds = time.perf_counter() - start
        transaction.rollback()
    db.execute_sql("DROP TABLE stats_copy")
    return seconds


def _generate(db, copies: int) -> None:
    for k in range(copies):
        with write_transaction(db):
            replay_day(db, k, HISTORY_PROCESSED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with database_urls(postgres=not args.sqlite_only) as urls:
        for name, url in urls.items():
            run(name, url, args.rows)


if __name__ == "__main__":
    main()
