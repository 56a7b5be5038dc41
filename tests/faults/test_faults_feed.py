"""The feed misbehaves while `wn-persist run` reads it: 5xx answers, stalls past the
timeout, 429 with `Retry-After`, a redirect loop (302 to itself), an HTML error page
instead of JSON for about 25 s. Nothing may be lost and no one-second window may hold
more than 20 requests (zKillboard's limit; server-side timestamps)."""

from __future__ import annotations

import pytest
from fakes.r2z2 import FakeR2Z2

from faults.faultkit import (
    FIRST,
    compare_rows,
    expected_rows,
    feed_env,
    peak_per_second,
    position,
    record,
    settle,
    stop,
    stored_rows,
    tracked_of,
    wait_until,
)

HTML_SECONDS = 25
LIMIT = 20


@pytest.fixture(scope="module")
def mails(real_envelopes):
    return [m for m in real_envelopes if len(m["esi"]["attackers"]) < 300][:30]


def test_feed_faults_lose_nothing_and_keep_the_rate(backend, fresh_url, procs, mails):
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    outcome = record(f"feed: 5xx, stall, 429, redirect loop, HTML [{backend}]")
    with FakeR2Z2(mails, first=FIRST) as feed:
        feed.reported_latest = FIRST
        feed.fail(FakeR2Z2.path(FIRST + 3), "500", "503", "502")
        feed.fail(FakeR2Z2.path(FIRST + 6), "timeout:3", "timeout:3")
        feed.fail(FakeR2Z2.path(FIRST + 9), "429:1", "429:1")
        feed.fail_for(FakeR2Z2.path(FIRST + 12), "redirect", 3)
        feed.fail_for(FakeR2Z2.path(FIRST + 15), "html", HTML_SECONDS)
        feed.fail("/ephemeral/sequence.json", "503")
        env = feed_env(
            fresh_url, feed.url, tracked, R2Z2_REQUESTS_PER_SECOND="19", R2Z2_TIMEOUT="1"
        )
        proc = procs.start(["run"], env, name="feed")
        head = FakeR2Z2.path(FIRST + len(mails))
        wait_until(lambda: head in feed.paths(), HTML_SECONDS + 40, "the head of the feed", proc)
        settle(lambda: set(stored_rows(fresh_url)) >= expected, 10)
        code = stop(proc)
        with feed.lock:
            times = [r.at for r in feed.requests]
        served = set(feed.served())
    stored = stored_rows(fresh_url)
    compare_rows(outcome, expected, stored)
    outcome.peak = peak_per_second(times)
    outcome.exit_code = str(code)
    log = proc.err
    assert code == 0, log[-3000:]
    problems = []
    missing = sorted(set(range(FIRST, FIRST + len(mails))) - served)
    if missing:
        problems.append(f"sequences never read (skipped): {missing}")
    if sorted(stored) != sorted(expected):
        problems.append(f"{outcome.lost} involvements lost, {outcome.duplicated} duplicated")
    if outcome.peak > LIMIT:
        problems.append(f"{outcome.peak} requests in one second (limit {LIMIT})")
    if position(fresh_url) != FIRST + len(mails) - 1:
        problems.append(f"feed position {position(fresh_url)}, not {FIRST + len(mails) - 1}")
    for fault in ("HTTP 500", "timed out", "429", "not JSON"):
        if fault not in log:
            problems.append(f"the log does not mention {fault!r}")
    assert not problems, "; ".join(problems)
