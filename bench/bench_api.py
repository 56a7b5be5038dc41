"""HTTP API benchmark: ~1M involvements over 365 days for 1,000 characters (five very
active pilots hold ~30% of the rows), aggregated, then every route timed (p50/p99) next
to the library call that answers it (its SQL plus row conversion), on SQLite and
PostgreSQL; `/stats` throughput with 8 concurrent clients over real HTTP; export rows/s
and RSS growth.

    python bench/bench_api.py [--rows 1000000] [--requests 200] [--no-postgres]
"""

from __future__ import annotations

import http.client
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import median, percentile, run_per_backend  # noqa: E402
from falcon import testing  # noqa: E402

from wn_persist_plugin.api.app import create_app  # noqa: E402
from wn_persist_plugin.api.metrics import make_registry  # noqa: E402
from wn_persist_plugin.api.server import ApiServer  # noqa: E402
from wn_persist_plugin.db import migrator  # noqa: E402
from wn_persist_plugin.db.connect import is_postgres, open_database  # noqa: E402
from wn_persist_plugin.settings import load_settings  # noqa: E402
from wn_persist_plugin.statistics import export, group, history  # noqa: E402
from wn_persist_plugin.statistics.aggregation import aggregate  # noqa: E402

BASE = 90_000_000
SKEWED = "CASE WHEN n % 10 < 3 THEN n % 5 ELSE n % 1000 END"


def generate(db, rows: int) -> None:
    """Rows by SQL (n = 0..rows-1): time spread evenly over 365 days, two rows per mail
    (rows 2m and 2m+1: one mail, one kill time, as the pipeline writes them)."""
    cols = (
        "killmail_id, kill_time, solar_system_id, solar_system_name, region_id, region_name, "
        "total_value, character_role, related_character_id, related_character_name, "
        "ship_type_id, ship_type_name, final_blow, solo, npc, attacker_count, processed_at"
    )
    if is_postgres(db):
        src = f"SELECT g AS n FROM generate_series(CAST(0 AS BIGINT), {rows - 1}) g"
        when = f"timestamp '2025-01-01' + (n / 2 * 2 * (31536000.0 / {rows})) * interval '1 second'"
        value = "CAST((n * 7919) % 500000000 AS NUMERIC(20,2)) / 100 + 1000000"
        boolean = "(n % {k} = 0)"
    else:
        src = (
            f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {rows - 1})"
            " SELECT n FROM s"
        )
        offset = f"CAST(n / 2 * 2 * (31536000.0 / {rows}) AS INTEGER)"
        when = f"datetime('2025-01-01', '+' || {offset} || ' seconds')"
        value = "printf('%d.%02d', 1000000 + (n * 7919) % 5000000, n % 100)"
        boolean = "(n % {k} = 0)"
    pct = "%%" if is_postgres(db) else "%"
    db.execute_sql(
        (
            f"INSERT INTO killmails ({cols}) SELECT {100_000_000} + n / 2, {when}, "
            f"30000000 + n % 500, 'System ' || (n % 500), "
            f"10000000 + n % 60, 'Region ' || (n % 60), "
            f"{value}, CASE WHEN n % 7 = 0 THEN 'victim' ELSE 'attacker' END, "
            f"{BASE} + {SKEWED}, 'Pilot ' || ({SKEWED}), 580 + n % 40, 'Ship ' || (n % 40), "
            f"{boolean.format(k=3)}, {boolean.format(k=11)}, {boolean.format(k=13)}, 1 + n % 25, "
            f"{when} FROM ({src}) AS seq WHERE 1 = 1 ON CONFLICT DO NOTHING"
        ).replace("%", pct)
    )
    now = "CURRENT_TIMESTAMP"
    db.execute_sql(
        "INSERT INTO tracked_characters (character_id, character_name, tracked, tracked_since, "
        f"updated_at) SELECT DISTINCT related_character_id, related_character_name, "
        f"{'TRUE' if is_postgres(db) else '1'}, {now}, {now} FROM killmails"
    )
    db.execute_sql("ANALYZE")


def timed_samples(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run(name: str, url: str, rows: int, requests: int) -> None:
    db = open_database(url)
    migrator.migrate(db)
    db.connect(reuse_if_open=True)
    clock = time.perf_counter()
    generate(db, rows)
    print(f"[{name}] generated {rows} rows in {time.perf_counter() - clock:.1f}s", flush=True)
    clock = time.perf_counter()
    aggregate(db)
    print(f"[{name}] aggregated in {time.perf_counter() - clock:.1f}s", flush=True)
    settings = load_settings(environ={"DATABASE_URL": url}, dotenv=Path("/nonexistent"))
    api_db = open_database(url, bind=False)
    app = create_app(settings, api_db, make_registry(api_db))
    client = testing.TestClient(app)
    top, quiet = BASE, BASE + 500
    month = "2025-06-01"
    deep = history.killmail_page(db, top, limit=500)
    for _ in range(60):  # about 30,000 rows deep
        deep = history.killmail_page(db, top, limit=500, after=deep.next)
    deep_cursor = deep.next.encode()
    kid = 100_000_000 + rows // 4
    cases = [
        ("/livez", {}, None),
        ("/readyz", {}, None),
        ("/api/v1/characters", {}, lambda: history.list_characters(db)),
        (f"/api/v1/characters/{top}", {}, lambda: history.character_profile(db, top)),
        (f"/api/v1/characters/{top}/stats", {}, lambda: history.character_stats(db, top)),
        (f"/api/v1/characters/{top}/killmails", {}, lambda: history.killmail_page(db, top)),
        (
            f"/api/v1/characters/{top} killmails deep",
            {"cursor": deep_cursor},
            lambda: history.killmail_page(db, top, after=history.PageKey.decode(deep_cursor)),
        ),
        (f"/api/v1/characters/{quiet}/killmails", {}, lambda: history.killmail_page(db, quiet)),
        (f"/api/v1/characters/{top}/activity", {}, lambda: history.activity(db, top)),
        (f"/api/v1/killmails/{kid}", {}, lambda: history.killmail_detail(db, kid)),
        (
            "/api/v1/leaderboard",
            {"start": month},
            lambda: history.leaderboard(db, start=__import__("datetime").date(2025, 6, 1)),
        ),
        ("/api/v1/group/stats", {}, lambda: (group.group_stats(db), group.group_totals(db))),
        ("/metrics", {}, None),
    ]
    print(f"\n[{name}] route | p50 ms | p99 ms | library p50 ms | ratio")
    for label, params, library in cases:
        path = label.split(" ")[0] + ("/killmails" if "deep" in label else "")
        n = (
            max(20, requests // 10)
            if "group" in label or label == "/api/v1/characters"
            else requests
        )
        http_t = timed_samples(
            lambda path=path, params=params: client.simulate_get(path, params=params or None), n
        )
        lib = median(timed_samples(library, n)) if library else None
        p50 = median(http_t) * 1000
        line = f"{label} | {p50:.2f} | {percentile(http_t, 99) * 1000:.2f}"
        if lib is not None:
            line += f" | {lib * 1000:.2f} | {p50 / (lib * 1000 + 1):.2f}x of (lib+1ms)"
        print(line, flush=True)
    # throughput: 8 clients over real HTTP
    server = ApiServer(app, "127.0.0.1", 0, threads=8)
    server.start_thread()
    done = [0]
    stop = time.monotonic() + 5

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        while time.monotonic() < stop:
            conn.request("GET", f"/api/v1/characters/{top}/stats")
            conn.getresponse().read()
            done[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.stop()
    print(f"[{name}] /stats with 8 clients: {done[0] / 5:.0f} requests/s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clock = time.perf_counter()
    count = sum(1 for _ in export.render(export.export_rows(api_db), "ndjson"))
    seconds = time.perf_counter() - clock
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    print(f"[{name}] export ndjson: {rows / seconds:.0f} rows/s ({count} chunks), "
          f"max RSS growth {grown:.1f} MB", flush=True)  # fmt: skip
    api_db.close()
    db.close()


def main() -> None:
    import logging

    run_per_backend(
        run,
        "requests",
        200,
        before=lambda: logging.getLogger("waitress.queue").setLevel(logging.ERROR),
    )


if __name__ == "__main__":
    main()
