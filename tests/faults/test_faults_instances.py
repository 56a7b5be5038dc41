"""Two `wn-persist run` instances on one database, the statistics job scheduled every
minute: no duplicate involvements or statistics, and each tick runs the job once (the job
lock). Both databases run at the same time to keep the wait for two ticks to ~2 minutes."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from contextlib import ExitStack

from fakes.r2z2 import FakeR2Z2

from faults.faultkit import (
    FIRST,
    clean_env,
    compare_rows,
    expected_rows,
    feed_env,
    record,
    statistics_rows,
    stop,
    stored_rows,
    tracked_of,
    wait_until,
    wipe_statistics,
)

JOB_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d,\d+ .*aggregated daily \(")


def job_minutes(log: str) -> Counter[str]:
    """How many statistics jobs a log shows per minute (one `aggregated daily` line each)."""
    return Counter(m.group(1) for line in log.splitlines() if (m := JOB_LINE.match(line)))


def test_two_instances_share_one_database(tmp_path, postgres_server, procs, real_envelopes):
    mails = [m for m in real_envelopes if len(m["esi"]["attackers"]) < 300][:30]
    tracked = tracked_of(mails)
    expected = expected_rows(mails, tracked)
    urls = {
        "sqlite": f"sqlite:///{tmp_path / 'shared.db'}",
        "postgresql": postgres_server.create_database(),
    }
    pairs = {}
    with ExitStack() as stack:
        for backend, url in urls.items():
            pair = []
            for n in range(2):
                feed = stack.enter_context(FakeR2Z2(mails, first=FIRST))
                feed.reported_latest = FIRST
                env = feed_env(url, feed.url, tracked, PERSISTENCE_AGGREGATION_SCHEDULE="* * * * *")
                pair.append((procs.start(["run"], env, name=f"{backend}{n}"), feed))
                if n == 0:
                    time.sleep(1.5)  # the first one migrates the new database
            pairs[backend] = pair
        for pair in pairs.values():
            for proc, feed in pair:
                head = FakeR2Z2.path(FIRST + len(mails))
                wait_until(lambda: head in feed.paths(), 60, "the head", proc)  # noqa: B023
                started = "statistics scheduler started"
                wait_until(lambda: started in proc.err, 10, "the scheduler", proc)  # noqa: B023
        now = dt.datetime.now(dt.UTC)
        first_tick = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        ticks = [first_tick, first_tick + dt.timedelta(minutes=1)]
        time.sleep(max(0.0, (ticks[-1] - dt.datetime.now(dt.UTC)).total_seconds()) + 8)
        codes = {b: [stop(p) for p, _ in pair] for b, pair in pairs.items()}
    labels = [t.strftime("%Y-%m-%d %H:%M") for t in ticks]
    problems = []
    for backend, url in urls.items():
        outcome = record(f"two instances, job every minute [{backend}]")
        stored = stored_rows(url)
        compare_rows(outcome, expected, stored)
        outcome.exit_code = "/".join(map(str, codes[backend]))
        if sorted(stored) != sorted(expected):
            problems.append(f"{backend}: {outcome.lost} lost, {outcome.duplicated} duplicated")
        runs = Counter()
        for proc, _ in pairs[backend]:
            runs.update(job_minutes(proc.err))
        for label in labels:
            if runs[label] != 1:
                problems.append(
                    f"{backend}: the job ran {runs[label]} times in the tick at {label}"
                )
        statistics = statistics_rows(url)
        if len(statistics) != len(set(statistics)):
            problems.append(f"{backend}: duplicate statistics rows")
        wipe_statistics(url)
        clean = procs.run(["aggregate", "--rebuild"], clean_env(DATABASE_URL=url))
        assert clean.popen.returncode == 0, clean.err
        if statistics != statistics_rows(url):
            problems.append(f"{backend}: statistics differ from a clean rebuild")
        if codes[backend] != [0, 0]:
            problems.append(f"{backend}: exit codes {codes[backend]}")
    assert not problems, "; ".join(problems)
