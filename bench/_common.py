"""Shared helpers for the benchmarks: databases to run on, the real corpus, timing."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
REAL_KILLMAILS = DATA_DIR / "killmails" / "real_killmails.jsonl"
KILLMAIL_COLUMNS = [
    "killmail_id",
    "kill_time",
    "solar_system_id",
    "solar_system_name",
    "region_id",
    "region_name",
    "total_value",
    "character_role",
    "related_character_id",
    "related_character_name",
    "ship_type_id",
    "ship_type_name",
    "final_blow",
    "solo",
    "npc",
    "attacker_count",
    "zkb_data",
    "victim_data",
    "attacker_data",
    "value_source",
    "processed_at",
]
"""The `killmails` columns a benchmark's raw-SQL baseline writes (all but `id`)."""

ADMIN_URL = os.environ.get("WN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def real_envelopes() -> list[dict[str, Any]]:
    """The 529 real killmails (R2Z2 envelopes); exits with a message when absent."""
    if not REAL_KILLMAILS.is_file():
        raise SystemExit(f"real data not found at {REAL_KILLMAILS}")
    with REAL_KILLMAILS.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


@contextmanager
def database_urls(*, postgres: bool = True) -> Iterator[dict[str, str]]:
    """Throwaway database URLs: {"sqlite": ..., "postgresql": ...}; dropped afterwards."""
    import psycopg2

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        name = None
        if postgres:
            name = f"wn_bench_{uuid.uuid4().hex[:10]}"
            conn = psycopg2.connect(ADMIN_URL)
            conn.autocommit = True
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
            conn.close()
            urls["postgresql"] = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        try:
            yield urls
        finally:
            if name:
                conn = psycopg2.connect(ADMIN_URL)
                conn.autocommit = True
                conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.close()


def run_per_backend(
    run: Callable[..., Any], count: str, default: int, *, before: Callable[[], None] = lambda: None
) -> None:
    """The command line shared by the 1M-row benchmarks: `--rows`, `--COUNT`,
    `--no-postgres`, `--only BACKEND`; calls `run(name, url, rows, count)` per backend."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(f"--{count}", type=int, default=default)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    before()
    with database_urls(postgres=not args.no_postgres) as urls:
        for name, url in urls.items():
            if not args.only or name == args.only:
                run(name, url, args.rows, getattr(args, count))


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of `repeat` runs, in seconds (best-of is least disturbed by noise)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
