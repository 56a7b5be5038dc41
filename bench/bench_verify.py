"""Verify + repair of 1,000 characters x 30 days against the fake zKillboard API at its
real rate limit (one request a second per address).

The fake (tests/fakes/zkillboard_api.py) serves mails derived from the real corpus (ids,
times and characters rewritten; ships, items, systems and values real): each of the 1,000
characters is the victim of ~10 mails and an attacker on ~10 more in November 2026, and
five of them are on 450 more each (three pages). The store holds all of them minus ~5% of
the involvements (the holes). `verify(..., repair=True)` checks every character and
stores the missing mails through the ingest path, then re-aggregates.

Printed: the time, the requests, and the ratio of the time to the rate limit's floor
(requests x 1 s, measured in the same run from the request count): how close to the
rate limit the run goes. Also the time not spent waiting for the pacer.

    .venv/bin/python bench/bench_verify.py [--only sqlite|postgresql] [--characters N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from _common import database_urls, real_envelopes  # noqa: E402
from fakes.zkillboard_api import FakeZkillboardApi, derived  # noqa: E402

UTC = dt.UTC
START, END = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
FIRST_CHARACTER = 2_110_000_000
FIRST_ID = 130_000_000


def seed(characters: int) -> list[dict]:
    """~20 mails per character in November 2026, and 450 more for five busy ones."""
    bases = [e for e in real_envelopes() if e.get("zkb") and 1 <= len(e["esi"]["attackers"]) <= 30]
    ids = [FIRST_CHARACTER + i for i in range(characters)]
    span = dt.datetime.combine(END, dt.time(23, 0), UTC) - dt.datetime.combine(
        START, dt.time(), UTC
    )
    mails = []
    count = characters * 10
    for k in range(count):
        when = dt.datetime.combine(START, dt.time(), UTC) + span * (k / count)
        attackers = [ids[(k * 7 + 1 + j) % characters] for j in range(1)]
        mails.append(
            derived(
                bases[k % len(bases)],
                FIRST_ID + k,
                when,
                victim=ids[k % characters],
                attackers=attackers,
            )
        )
    for b, busy in enumerate(ids[:5]):
        for k in range(450):
            n = count + b * 450 + k
            when = dt.datetime.combine(START, dt.time(), UTC) + span * (k / 450)
            mails.append(derived(bases[n % len(bases)], FIRST_ID + n, when, victim=busy))
    return mails


def run(name: str, url: str, characters: int) -> None:
    from peewee import SQL

    from wn_persist_plugin.db import migrator
    from wn_persist_plugin.db.connect import open_database
    from wn_persist_plugin.db.models import Involvement
    from wn_persist_plugin.ingest.backfill import Backfill, Item
    from wn_persist_plugin.ingest.tracked import TrackedSet
    from wn_persist_plugin.ingest.verify import verify
    from wn_persist_plugin.sources.zkill_api import ZkillApiClient
    from wn_persist_plugin.statistics.aggregation import aggregate

    mails = seed(characters)
    ids = [FIRST_CHARACTER + i for i in range(characters)]
    db = open_database(url)
    migrator.migrate(db)
    runner = Backfill(db, TrackedSet.of_ids(ids))
    for mail in mails:
        runner.feed(Item("bench", str(mail["killmail_id"]), mail))
    runner.flush()
    rows = Involvement.select().count()
    holes = Involvement.delete().where(SQL('"id" - ("id" / 20) * 20 = 0')).execute()  # ~5%
    aggregate(db)
    with FakeZkillboardApi(mails) as api:  # 1 request/s per address, else 429
        client = ZkillApiClient(api.url)
        print(
            f"{name}: {characters:,} characters x {(END - START).days + 1} days, "
            f"{len(mails):,} mails, {rows:,} involvements, {holes:,} deleted",
            flush=True,
        )
        started = time.perf_counter()
        report = verify(db, ids, START, END, client, repair=True)
        elapsed = time.perf_counter() - started
        answered_429 = len(api.paths(429))
    total = report.total
    after = Involvement.select().count()
    floor = client.requests * 1.0
    print(f"  elapsed            {elapsed:,.1f} s")
    print(f"  requests           {client.requests:,} (429 answers: {answered_429})")
    print(f"  rate-limit floor   {floor:,.0f} s (requests x 1 s)")
    print(f"  ratio              {elapsed / floor:.3f} x the floor")
    print(
        f"  not waiting        {elapsed - client.pacer.waited:,.1f} s "
        f"({(elapsed - client.pacer.waited) / client.requests * 1000:.0f} ms per request)"
    )
    print(
        f"  on zKillboard      {total.on_zkillboard:,}; missing {total.missing:,}, "
        f"repaired {total.repaired:,}, still missing {total.still_missing}, extra {total.extra}"
    )
    print(f"  involvements       {after:,} after (before the holes: {rows:,}); {report.statistics}")
    if report.stopped or after != rows or total.still_missing:
        raise SystemExit(f"{name}: verify did not repair everything ({report.stopped})")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--characters", type=int, default=1000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    with database_urls(postgres=args.only != "sqlite") as urls:
        for name, url in urls.items():
            if not args.only or name == args.only:
                run(name, url, args.characters)


if __name__ == "__main__":
    main()
