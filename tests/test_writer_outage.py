"""The writer against real trouble, on SQLite and PostgreSQL: a full queue, a database that
is locked or refuses connections and comes back, a database unreachable at startup.

No mocks: SQLite is locked by a second connection holding an exclusive transaction (with
a short busy timeout so the writer sees "database is locked"); PostgreSQL refuses
connections (`ALLOW_CONNECTIONS false`) and its sessions are terminated.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import psycopg2
import pytest
from conftest import ADMIN_URL
from prometheus_client import CollectorRegistry
from test_killmail import esi_mail
from test_pipeline import Host

from wn_persist_plugin.api.metrics import register_pipeline_metrics
from wn_persist_plugin.db import connect as database
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.match import estimated_size

TRACKED = 90000002


def mails(count: int, start: int = 1) -> list[dict]:
    return [
        {"killmail_id": i, "hash": "h", "esi": esi_mail(killmail_id=i), "zkb": {"totalValue": i}}
        for i in range(start, start + count)
    ]


def stored_ids(url: str) -> list[int]:
    db = open_database(url, bind=False)
    try:
        return [row[0] for row in Involvement.select(Involvement.killmail_id).tuples().execute(db)]
    finally:
        db.close()


def sqlite_path(url: str) -> str:
    return url[len("sqlite:///") :]


def pg_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def pg_admin():
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def writes_blocked(backend: str, url: str):
    """Hold the write lock from another connection until the block ends."""
    if backend == "sqlite":
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        conn = psycopg2.connect(url)
        cur = conn.cursor()
        cur.execute("LOCK TABLE killmails IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()


@contextlib.contextmanager
def database_gone(backend: str, url: str):
    """SQLite: locked past the busy timeout. PostgreSQL: no connections accepted and every
    session terminated."""
    if backend == "sqlite":
        with writes_blocked(backend, url):
            yield
        return
    admin = pg_admin()
    name = pg_name(url)
    cur = admin.cursor()
    cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    cur.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    try:
        yield
    finally:
        cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def short_busy_timeout(monkeypatch):
    """SQLite gives up on a lock after 100 ms instead of 30 s (the lock itself is real)."""
    monkeypatch.setitem(database.SQLITE_PRAGMAS, "busy_timeout", 100)


def fed_in_a_thread(host: Host, batch: list[dict]) -> None:
    """Feed the mails from another thread; fail if the hook waits on the blocked database."""
    done = threading.Event()

    def feed():
        host.kill(*batch)
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    assert done.wait(20), "on_kill_processed blocked while the database was locked"


def test_full_queue_drops_newest_and_shutdown_writes_everything_queued(backend, fresh_url, caplog):
    host = Host(fresh_url, PERSISTENCE_QUEUE_SIZE="20")
    host.track([{"character_id": TRACKED}])
    assert host.plugin.flush_pending(30)
    batch = mails(60)
    with writes_blocked(backend, fresh_url):
        fed_in_a_thread(host, batch)
        stats = host.plugin.pipeline_stats()
        accepted = stats.matched - stats.dropped
        assert stats.matched == 60 and stats.dropped > 0
        assert accepted >= 20  # the queue was full: 20 waiting (+ the batch in flight)
        warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited: once a minute, not once per mail
        assert "dropped killmail" in warnings[0]
        wait_for(lambda: host.plugin.pipeline_stats().queued == accepted, timeout=10)
        # Shut down while the database is still locked; the lock goes away meanwhile.
        stopper = threading.Thread(target=host.stop)
        stopper.start()
        time.sleep(0.5)
    stopper.join(60)
    assert not stopper.is_alive()
    stats = host.plugin.pipeline_stats()
    assert stats.lost == 0 and stats.mails_written == accepted
    # Every accepted mail is stored; drop-newest keeps the first ones.
    stored = set(stored_ids(fresh_url))
    assert len(stored) == accepted
    assert set(range(1, 21)) <= stored <= set(range(1, 61))


@pytest.mark.usefixtures("short_busy_timeout")
def test_database_goes_away_and_comes_back_nothing_lost(backend, fresh_url):
    host = Host(fresh_url)
    host.track([{"character_id": TRACKED}])
    host.kill(*mails(5))
    assert host.plugin.flush_pending(30)
    with database_gone(backend, fresh_url):
        fed_in_a_thread(host, mails(30, start=6))
        wait_for(lambda: host.plugin.pipeline_stats().retries >= 2)
        assert host.plugin.pipeline_stats().queued > 0
    assert host.plugin.flush_pending(60)
    stats = host.plugin.pipeline_stats()
    assert (stats.dropped, stats.lost, stats.write_errors) == (0, 0, 0)
    assert sorted(stored_ids(fresh_url)) == list(range(1, 36))
    host.kill(*mails(2, start=36))  # and it keeps working afterwards
    host.stop()
    assert sorted(stored_ids(fresh_url)) == list(range(1, 38))


def test_unreachable_at_startup_retries_in_the_background(backend, fresh_url, tmp_path, caplog):
    if backend == "sqlite":
        later = tmp_path / "not-yet"
        url = f"sqlite:///{later / 'wn.db'}"  # its directory does not exist yet
    else:
        url = fresh_url
        admin = pg_admin()
        admin.cursor().execute(f'ALTER DATABASE "{pg_name(url)}" ALLOW_CONNECTIONS false')
        admin.close()
    try:
        host = Host(url)  # does not raise
        assert host.plugin.active
        host.track([{"character_id": TRACKED}])
        host.kill(*mails(10))
        wait_for(lambda: host.plugin.pipeline_stats().retries >= 1)
        assert "unreachable at startup" in caplog.text
    finally:
        if backend == "sqlite":
            later.mkdir()
        else:
            admin = pg_admin()
            admin.cursor().execute(f'ALTER DATABASE "{pg_name(url)}" ALLOW_CONNECTIONS true')
            admin.close()
    assert host.plugin.flush_pending(60)
    assert sorted(stored_ids(url)) == list(range(1, 11))
    host.stop()
    assert host.plugin.pipeline_stats().lost == 0


@pytest.mark.usefixtures("short_busy_timeout")
def test_shutdown_gives_up_after_the_timeout_and_says_what_was_lost(backend, fresh_url, caplog):
    host = Host(fresh_url, PERSISTENCE_SHUTDOWN_TIMEOUT="1")
    host.track([{"character_id": TRACKED}])
    assert host.plugin.flush_pending(30)
    with database_gone(backend, fresh_url):
        host.kill(*mails(3))
        wait_for(lambda: host.plugin.pipeline_stats().retries >= 1)
        host.stop()
    stats = host.plugin.pipeline_stats()
    assert stats.lost == 3
    assert "gave up" in caplog.text or "not written" in caplog.text
    assert stored_ids(fresh_url) == []


@pytest.mark.parametrize("backend", ["postgresql"])
def test_pooled_postgres_recovers_too(backend, fresh_url):
    host = Host(fresh_url, POSTGRES_POOL_SIZE="2")
    host.track([{"character_id": TRACKED}])
    host.kill(*mails(5))
    assert host.plugin.flush_pending(30)
    with database_gone(backend, fresh_url):
        fed_in_a_thread(host, mails(10, start=6))
        wait_for(lambda: host.plugin.pipeline_stats().retries >= 2)
    assert host.plugin.flush_pending(60)
    host.stop()
    assert host.plugin.pipeline_stats().lost == 0
    assert sorted(stored_ids(fresh_url)) == list(range(1, 16))


def test_zero_shutdown_timeout_still_writes_a_healthy_queue(backend, fresh_url):
    host = Host(fresh_url, PERSISTENCE_SHUTDOWN_TIMEOUT="0")
    host.track([{"character_id": TRACKED}])
    host.kill(*mails(200))
    host.stop()  # the timeout bounds retrying an unreachable database, nothing else
    assert host.plugin.pipeline_stats().lost == 0
    assert sorted(stored_ids(fresh_url)) == list(range(1, 201))


def big_mails(count: int, attackers: int, start: int = 1) -> list[dict]:
    """Mails with `attackers` extra NPC attackers each (the tracked one stays on them)."""
    out = []
    for mail in mails(count, start):
        extra = [{"ship_type_id": 34495, "faction_id": 500024, "damage_done": 1}] * attackers
        mail["esi"]["attackers"] = mail["esi"]["attackers"] + extra
        out.append(mail)
    return out


def test_queue_bounded_in_bytes_drops_newest(backend, fresh_url, caplog):
    host = Host(fresh_url, PERSISTENCE_QUEUE_BYTES="1MiB")
    host.track([{"character_id": TRACKED}])
    assert host.plugin.flush_pending(30)
    batch = big_mails(10, attackers=300)
    size = estimated_size(batch[0])
    assert 300 * 1024 < size < 1024**2 // 3  # three fit in 1 MiB, four do not
    with writes_blocked(backend, fresh_url):
        fed_in_a_thread(host, batch)
        stats = host.plugin.pipeline_stats()
        # Nothing is written while blocked, so every accepted mail still holds its bytes.
        assert (stats.matched, stats.dropped) == (10, 7)
        assert stats.queued == 3 and stats.queued_bytes == 3 * size
        registry = CollectorRegistry()
        register_pipeline_metrics(registry, host.plugin.pipeline_stats)
        assert registry.get_sample_value("wn_persist_writer_queue_bytes") == 3 * size
        warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
        assert len(warnings) == 1 and "1 MiB" in warnings[0]
        assert "dropped killmail 4 and" not in warnings[0]  # the first drop, alone
    assert host.plugin.flush_pending(60)
    stats = host.plugin.pipeline_stats()
    assert (stats.queued, stats.queued_bytes, stats.lost) == (0, 0, 0)
    assert sorted(stored_ids(fresh_url)) == [1, 2, 3]
    # A mail bigger than the whole bound is taken into an empty queue, not refused forever.
    (huge,) = big_mails(1, attackers=1100, start=100)
    assert estimated_size(huge) > 1024**2
    host.kill(huge)
    assert host.plugin.flush_pending(60)
    host.stop()
    assert host.plugin.pipeline_stats().dropped == 7
    assert 100 in stored_ids(fresh_url)
