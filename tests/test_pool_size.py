"""PostgreSQL connection pool: big enough for the writer and the scheduler, and a pool
that stays exhausted for a while only delays the writer (SQLite has no pool)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_id_range import TRACKED, envelope

from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.ingest.tracked import TrackedEntry, TrackedSet
from wn_persist_plugin.ingest.writer import Writer, WriterSettings
from wn_persist_plugin.settings import load_settings


def settings(tmp_path: Path, **env: str):
    return load_settings(environ=env, dotenv=tmp_path / "none.env")


@pytest.mark.parametrize("size", ["1", "0"])
def test_pool_smaller_than_two_is_refused(tmp_path, size):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, POSTGRES_HOST="h", POSTGRES_POOL_SIZE=size)
    assert info.value.variable == "POSTGRES_POOL_SIZE"
    assert "2" in info.value.problem and "\n" not in str(info.value)


def test_pool_of_two_is_accepted(tmp_path):
    assert settings(tmp_path, POSTGRES_HOST="h", POSTGRES_POOL_SIZE="2").pool_size == 2


def test_writer_waits_for_a_pooled_connection_instead_of_giving_up(postgres_server, tmp_path):
    url = postgres_server.create_database()
    plain = open_database(url, bind=False)
    migrator.migrate(plain)
    plain.close()
    db = open_database(settings(tmp_path, DATABASE_URL=url, POSTGRES_POOL_SIZE="2"))
    db._wait_timeout = 0.5  # white box: playhouse.pool's wait (30 s) shortened for the test
    holding = threading.Barrier(3)
    release = threading.Event()

    def hold() -> None:  # stands for jobs that keep the pool's connections busy
        with db.connection_context():
            holding.wait()
            release.wait(30)

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
    for thread in holders:
        thread.start()
    holding.wait()
    writer = Writer(db, WriterSettings(retry_initial=0.1, retry_max=0.2)).start()
    try:
        assert writer.offer(envelope(1), TrackedSet.of([TrackedEntry(TRACKED)]))
        deadline = time.monotonic() + 20
        while writer.counters.retries < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.counters.retries >= 1  # the pool was exhausted: retried, not dropped
    finally:
        release.set()
        for thread in holders:
            thread.join(10)
    assert writer.flush(20)
    assert writer.stop(10)
    assert writer.counters.lost == 0 and writer.counters.rows_written == 1
    with db.connection_context():
        assert Involvement.select().count() == 1
    db.close_all()
