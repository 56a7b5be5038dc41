"""Sustained rows per second through the writer, against the raw driver (not a test).

The real corpus with 1,000 tracked characters, replayed with shifted killmail ids. The
writer's time runs from the first `on_kill_processed` to `flush_pending()` returning: parsing,
building rows, SQL, transactions, all on its thread. The baseline writes the same rows
(already built; only turned into driver parameters inside the timing) with the driver's
`executemany` in one transaction into an identical, empty table.

    .venv/bin/python bench/bench_writer.py [--replays 10] [--no-postgres]

Each side runs `--rounds` times, alternating, on an emptied table; the best of each is
compared (the machine is shared and noisy).

Goal: the writer at least 0.5x the baseline's rows/s on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import KILLMAIL_COLUMNS, database_urls, real_envelopes  # noqa: E402
from bench_hook import characters, replayed  # noqa: E402

from wn_persist_plugin.db import migrator  # noqa: E402
from wn_persist_plugin.db.connect import open_database  # noqa: E402
from wn_persist_plugin.ingest.match import involves  # noqa: E402
from wn_persist_plugin.ingest.rows import InvolvementRow, involvement_rows  # noqa: E402
from wn_persist_plugin.ingest.tracked import TrackedSet  # noqa: E402
from wn_persist_plugin.killmails import parse as km  # noqa: E402
from wn_persist_plugin.plugin import PersistencePlugin  # noqa: E402

COLUMNS = KILLMAIL_COLUMNS
JSON_COLUMNS = {"zkb_data", "victim_data", "attacker_data"}


def params(rows: list[InvolvementRow], sqlite: bool) -> list[tuple]:
    """The rows as driver parameters: JSON text, ISK text/Decimal, naive UTC times.
    `processed_at` is the time of the write, as `store.write_rows` stamps it."""
    stamp = dt.datetime.now(dt.UTC)
    out = []
    for row in rows:
        values = []
        for column in COLUMNS:
            value = stamp if column == "processed_at" else getattr(row, column)
            if column in JSON_COLUMNS:
                value = None if value is None else json.dumps(value)
            elif column in ("kill_time", "processed_at"):
                value = value.replace(tzinfo=None)
                value = value.isoformat(sep=" ") if sqlite else value
            elif isinstance(value, Decimal) and sqlite:
                value = str(value)
            values.append(value)
        out.append(tuple(values))
    return out


def raw_sqlite(url: str, rows: list[InvolvementRow]) -> float:
    conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    sql = f"INSERT INTO killmails ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    conn.execute("DELETE FROM killmails")
    start = time.perf_counter()
    values = params(rows, sqlite=True)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, values)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def raw_postgres(url: str, rows: list[InvolvementRow], values_helper: bool = False) -> float:
    import psycopg2
    from psycopg2.extras import execute_values

    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute("DELETE FROM killmails")
    conn.commit()
    cols = ", ".join(COLUMNS)
    start = time.perf_counter()
    values = params(rows, sqlite=False)
    if values_helper:
        execute_values(cur, f"INSERT INTO killmails ({cols}) VALUES %s", values, page_size=500)
    else:
        sql = f"INSERT INTO killmails ({cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        cur.executemany(sql, values)
    conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def through_writer(url: str, tracked: list[int], mails: list[dict]) -> tuple[float, int]:
    plugin = PersistencePlugin(environ={})
    plugin.on_startup(
        config={
            "ENABLE_PERSISTENCE": "true",
            "DATABASE_URL": url,
            "PERSISTENCE_QUEUE_SIZE": str(len(mails) + 1),
        }
    )
    plugin.on_tracked_characters_updated(characters=[{"character_id": c} for c in tracked])
    plugin.flush_pending(60)
    start = time.perf_counter()
    for mail in mails:
        plugin.on_kill_processed(killmail=mail)
    plugin.flush_pending(600)
    elapsed = time.perf_counter() - start
    plugin.on_shutdown()
    stats = plugin.pipeline_stats()
    assert stats.dropped == 0 and stats.write_errors == 0, stats
    return elapsed, stats.rows_written


def fresh_schema(url: str) -> None:
    db = open_database(url, bind=False)
    migrator.migrate(db)
    db.execute_sql("DELETE FROM killmails")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="best of N for each side")
    args = parser.parse_args()

    corpus = real_envelopes()
    rng = random.Random(20261128)
    tracked = rng.sample(characters(corpus), 1000)
    ids = frozenset(tracked)
    mails = [m for m in replayed(corpus, args.replays) if involves(m, ids)]
    rows = [r for m in mails for r in involvement_rows(km.parse(m), TrackedSet.of_ids(ids))]
    print(f"{len(mails)} tracked mails, {len(rows)} rows ({args.replays} replays)")

    worst = float("inf")
    for backend in ("sqlite",) if args.no_postgres else ("sqlite", "postgresql"):
        with (
            database_urls(postgres=backend == "postgresql") as urls,
            database_urls(postgres=backend == "postgresql") as raw_urls,
        ):
            url, raw_url = urls[backend], raw_urls[backend]
            fresh_schema(raw_url)
            writer_s = raw_s = values_s = float("inf")
            for _ in range(args.rounds):  # alternate the sides; keep each side's best
                fresh_schema(url)
                elapsed, written = through_writer(url, tracked, mails)
                assert written == len(rows), (written, len(rows))
                writer_s = min(writer_s, elapsed)
                if backend == "sqlite":
                    raw_s = min(raw_s, raw_sqlite(raw_url, rows))
                else:
                    raw_s = min(raw_s, raw_postgres(raw_url, rows))
                    values_s = min(values_s, raw_postgres(raw_url, rows, values_helper=True))
            extra = ""
            if backend == "postgresql":
                extra = (
                    f"; execute_values {len(rows) / values_s:8.0f} rows/s "
                    f"(writer {raw_s and values_s / writer_s:.2f}x of it)"
                )
        ratio = (len(rows) / writer_s) / (len(rows) / raw_s)
        worst = min(worst, ratio)
        print(
            f"{backend:10s} writer {len(rows) / writer_s:8.0f} rows/s  "
            f"executemany {len(rows) / raw_s:8.0f} rows/s  ratio {ratio:.2f}x{extra}"
        )
    print(f"worst ratio {worst:.2f}x (goal >= 0.5x): {'met' if worst >= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
