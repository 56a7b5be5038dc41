"""`wn-persist run` as a real process, stopped by a real SIGTERM / SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.r2z2 import FakeR2Z2
from fakes.recording import wait_for

from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.host import feed_state

FIRST = 90_000_000
CLI = Path(sys.executable).with_name("wn-persist")


def start(tmp_path: Path, db_url: str, feed_url: str, **extra: str) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAP_", "R2Z2_", "POSTGRES_", "TRACKED_", "DATABASE_"))
    }
    env.update(
        {
            "DATABASE_URL": db_url,
            "R2Z2_BASE_URL": feed_url,
            "R2Z2_NOT_FOUND_WAIT": "0.05",
            "R2Z2_TIMEOUT": "2",
            "PROGRESS_INTERVAL_SECONDS": "0.2",
            **extra,
        }
    )
    return subprocess.Popen(
        [str(CLI), "run", "--track", "2123019188"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_and_saves_the_position(db_url, db, tmp_path, real_envelopes, signum):
    with FakeR2Z2(real_envelopes[:15], first=FIRST, published=FIRST + 9) as feed:
        feed.reported_latest = FIRST
        process = start(tmp_path, db_url, feed.url)
        try:
            wait_for(lambda: FakeR2Z2.path(FIRST + 10) in feed.paths(), what="the head")
            process.send_signal(signum)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert f"{signal.Signals(signum).name}: stopping" in err
    assert "progress: seen=10 " in err
    assert f"stopped at sequence {FIRST + 9}" in err
    assert feed_state.load_sequence(db) == FIRST + 9
    assert feed.served() == list(range(FIRST, FIRST + 10))


def test_sigterm_during_a_long_wait_exits_promptly(db_url, db, tmp_path, real_envelopes):
    with FakeR2Z2(real_envelopes[:3], first=FIRST) as feed:
        feed.reported_latest = FIRST
        process = start(tmp_path, db_url, feed.url, R2Z2_NOT_FOUND_WAIT="120")
        try:
            wait_for(lambda: FakeR2Z2.path(FIRST + 3) in feed.paths(), what="the head")
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert feed_state.load_sequence(db) == FIRST + 2


def test_unreachable_feed_keeps_retrying_and_stops_on_signal(db_url, db, tmp_path):
    """No network: the host says so on every retry and still stops cleanly."""
    with FakeR2Z2([], first=FIRST) as feed:
        url = feed.url  # closed again: nothing listens there now
    process = start(tmp_path, db_url, url, R2Z2_MAX_BACKOFF="0.2")
    try:
        time.sleep(1.2)  # connection refused at once: several retries by now
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert f"R2Z2 sequence.json at {url}: connection refused" in err
    assert "retrying in" in err
    db_check = open_database(db_url, bind=False)
    assert feed_state.load_sequence(db_check) is None
    db_check.close()


def test_postgres_not_up_yet_is_retried_until_stopped(tmp_path):
    """In Docker the database may start after us: retry (logged, password masked)."""
    url = "postgresql://wanderer:hunter2@127.0.0.1:1/wanderer_notifier"
    process = start(tmp_path, url, "http://127.0.0.1:9")
    try:
        time.sleep(1.5)  # connection refused at once: a few retries by now
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "database postgresql://wanderer:***@127.0.0.1:1/wanderer_notifier unreachable" in err
    assert "retrying in" in err and "hunter2" not in err


def test_unopenable_sqlite_fails_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/dir/wn.db"
    process = start(tmp_path, url, "http://127.0.0.1:9")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert err.strip().splitlines()[-1].startswith("wn-persist: error: database error (sqlite:///")
