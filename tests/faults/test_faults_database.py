"""The database fails under a running `wn-persist run`: a PostgreSQL server stopped and
started again (a throwaway cluster of its own, never the shared server), SIGTERM while
the database is unreachable, SQLite on a full file system."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from fakes.r2z2 import FakeR2Z2
from test_writer_outage import database_gone

from faults.faultkit import (
    FIRST,
    compare_rows,
    expected_rows,
    feed_env,
    position,
    record,
    settle,
    stop,
    stored_rows,
    tracked_of,
    wait_until,
)

DOWN_SECONDS = 6
SHUTDOWN_TIMEOUT = 10


@pytest.fixture(scope="module")
def mails(real_envelopes):
    return [m for m in real_envelopes if len(m["esi"]["attackers"]) < 300][:60]


def test_postgres_server_stopped_and_started(pg_cluster, procs, mails):
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    outcome = record("PostgreSQL server stopped and started")
    url = pg_cluster.url
    with FakeR2Z2(mails, first=FIRST, published=FIRST + 19) as feed:
        feed.reported_latest = FIRST
        proc = procs.start(["run"], feed_env(url, feed.url, tracked), name="pg")
        wait_until(lambda: FakeR2Z2.path(FIRST + 20) in feed.paths(), 30, "20 mails", proc)
        wait_until(
            lambda: set(stored_rows(url)) >= expected_rows(mails[:20], tracked),
            20,
            "the first rows",
            proc,
        )
        pg_cluster.stop()
        assert not pg_cluster.running()
        feed.publish(FIRST + len(mails) - 1)
        time.sleep(DOWN_SECONDS)
        pg_cluster.start()
        head = FakeR2Z2.path(FIRST + len(mails))
        wait_until(lambda: head in feed.paths(), 30, "the head of the feed", proc)
        settle(lambda: set(stored_rows(url)) >= expected, 45)
        code = stop(proc)
    stored = stored_rows(url)
    compare_rows(outcome, expected, stored)
    outcome.exit_code = str(code)
    log = proc.err
    assert code == 0, log[-3000:]
    assert sorted(stored) == sorted(expected), "involvements lost or duplicated"
    lines = log.splitlines()
    down = [
        i
        for i, line in enumerate(lines)
        if re.search(r"database .*(unavailable|unreachable)", line)
    ]
    assert down, "the log never says the database went down"
    back = [
        i
        for i, line in enumerate(lines)
        if re.search(r"\bdatabase\b.*\bback\b", line, re.IGNORECASE) and i > down[0]
    ]
    assert back, "the log never says the database is back:\n" + "\n".join(lines[down[0] :][:40])


@pytest.mark.parametrize("stall", ["database down"])
def test_sigterm_during_an_outage(backend, fresh_url, procs, mails, stall):
    """SIGTERM while the database is unreachable: exit within PERSISTENCE_SHUTDOWN_TIMEOUT
    (+ a few seconds) with a non-zero status since mails were not written, and say where
    the feed resumes; a restart once the database is back then stores everything."""
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    outcome = record(f"SIGTERM during a database outage [{backend}]", expected=len(expected))
    with FakeR2Z2(mails, first=FIRST, published=FIRST + 9) as feed:
        feed.reported_latest = FIRST
        env = feed_env(
            fresh_url, feed.url, tracked, PERSISTENCE_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)
        )
        proc = procs.start(["run"], env, name="outage")
        wait_until(lambda: FakeR2Z2.path(FIRST + 10) in feed.paths(), 30, "10 mails", proc)
        first = expected_rows(mails[:10], tracked)
        wait_until(lambda: set(stored_rows(fresh_url)) >= first, 20, "the first rows", proc)
        with database_gone(backend, fresh_url):
            feed.publish(FIRST + len(mails) - 1)
            more = FakeR2Z2.path(FIRST + 12)
            wait_until(lambda: more in feed.paths(), 30, "mails during the outage", proc)
            time.sleep(1.5)
            proc.signal(15)
            clock = time.monotonic()
            code = proc.wait(SHUTDOWN_TIMEOUT + 5)
            took = time.monotonic() - clock
            if code is None:
                proc.wait(60)  # how long it really takes (bounded), for the report
                took = time.monotonic() - clock
                code = proc.popen.poll()
                proc.kill()
        outcome.exit_code = (
            f"{code} after {took:.0f}s" if code is not None else f"none in {took:.0f}s"
        )
        saved = position(fresh_url)
        log = proc.err
        restart = procs.start(["run"], env, name="restart")
        head = FakeR2Z2.path(FIRST + len(mails))
        wait_until(lambda: head in feed.paths(), 30, "the head of the feed", restart)
        settle(lambda: set(stored_rows(fresh_url)) >= expected, 20)
        assert stop(restart) == 0, restart.err[-3000:]
    stored = stored_rows(fresh_url)
    compare_rows(outcome, expected, stored)
    problems = []
    if code is None:
        problems.append(f"still running {took:.0f} s after SIGTERM (timeout {SHUTDOWN_TIMEOUT} s)")
    elif took > SHUTDOWN_TIMEOUT + 5:
        problems.append(f"exited {took:.0f} s after SIGTERM (timeout {SHUTDOWN_TIMEOUT} s)")
    if code == 0:
        problems.append("exit status 0 although mails were not written")
    resume = [line for line in log.splitlines() if re.search(r"resum|next start", line)]
    if saved is None or not any(str(saved) in line for line in resume):
        problems.append(f"the log does not say the feed resumes after {saved}")
    if sorted(stored) != sorted(expected):
        problems.append(f"after a restart: {outcome.lost} lost, {outcome.duplicated} duplicated")
    assert not problems, "; ".join(problems) + "\n" + log[-2000:]


@contextlib.contextmanager
def small_file_system(size: str):
    """A size-limited tmpfs (needs root and mount in the sandbox)."""
    where = Path(tempfile.mkdtemp(prefix="wn-faults-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"cannot mount a small tmpfs: {done.stderr.strip()}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        os.rmdir(where)


def fill_up(folder: Path) -> Path:
    """A file taking every free byte of `folder`'s file system."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_sqlite_on_a_full_disk(procs, mails):
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    outcome = record("SQLite on a full disk", expected=len(expected))
    with (
        small_file_system("8m") as folder,
        FakeR2Z2(mails, first=FIRST, published=FIRST + 4) as feed,
    ):
        url = f"sqlite:///{folder / 'wn.db'}"
        feed.reported_latest = FIRST
        proc = procs.start(["run"], feed_env(url, feed.url, tracked), name="full")
        wait_until(lambda: FakeR2Z2.path(FIRST + 5) in feed.paths(), 30, "5 mails", proc)
        first = expected_rows(mails[:5], tracked)
        wait_until(lambda: set(stored_rows(url)) >= first, 20, "the first rows", proc)
        filler = fill_up(folder)
        feed.publish(FIRST + len(mails) - 1)
        full_error = settle(lambda: "full" in proc.err, 20)
        with sqlite3.connect(f"file:{folder / 'wn.db'}?mode=ro", uri=True) as check:
            healthy = check.execute("PRAGMA integrity_check").fetchone()[0]
        partial = set(stored_rows(url))
        filler.unlink()
        head = FakeR2Z2.path(FIRST + len(mails))
        settle(lambda: head in feed.paths(), 40)
        settle(lambda: set(stored_rows(url)) >= expected, 20)
        code = stop(proc)
        stored = stored_rows(url)
    compare_rows(outcome, expected, stored)
    outcome.exit_code = str(code)
    assert full_error, "no error about the full disk in the log:\n" + proc.err[-3000:]
    assert healthy == "ok"
    assert partial <= expected
    assert len(partial) < len(expected), "the disk was never full"
    assert code == 0, proc.err[-3000:]
    assert sorted(stored) == sorted(expected), "involvements lost or duplicated"
