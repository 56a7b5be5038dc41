"""End to end: `wn-persist run`'s host with the real plugin (background writer) on SQLite
and PostgreSQL, fed by the local fake R2Z2 feed and map API with the real killmails."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from fakes.r2z2 import FakeR2Z2
from fakes.recording import FAST, HostThread, settings_for, wait_for
from fakes.wanderer_map import FakeMap, map_entry
from test_host_signals import start
from test_writer_outage import writes_blocked

from wn_persist_plugin.host import feed_state
from wn_persist_plugin.plugin import PersistencePlugin

FIRST = 90_000_000
KEY = "e2e-map-key"


@pytest.fixture(scope="module")
def selection(real_envelopes):
    """40 ordinary mails, a 143-attacker fleet kill, the 498-attacker Astrahus and the
    3,753-attacker Keepstar."""
    by_id = {m["killmail_id"]: m for m in real_envelopes}
    big = [by_id[12300251], by_id[115787551], by_id[131126432]]
    return real_envelopes[:20] + big[:1] + real_envelopes[20:40] + big[1:]


def participants(mail):
    esi = mail["esi"]
    victim = esi["victim"].get("character_id")
    attackers = {a["character_id"] for a in esi["attackers"] if a.get("character_id")}
    return victim, attackers


@pytest.fixture(scope="module")
def tracked(selection):
    """Characters seen on two or more of the mails, plus every attacker of the fleet kill."""
    seen = Counter()
    for mail in selection:
        victim, attackers = participants(mail)
        seen.update(attackers | ({victim} if victim else set()))
    ids = {cid for cid, n in seen.items() if n >= 2}
    ids |= participants(selection[20])[1]
    return sorted(ids)


def expected_rows(mails, tracked):
    rows = set()
    for mail in mails:
        victim, attackers = participants(mail)
        if victim in tracked:
            rows.add((mail["killmail_id"], victim, "victim"))
        rows |= {(mail["killmail_id"], a, "attacker") for a in attackers if a in tracked}
    return rows


def stored_rows(db):
    cursor = db.execute_sql(
        "SELECT killmail_id, related_character_id, character_role FROM killmails"
    )
    rows = [tuple(r) for r in cursor.fetchall()]
    assert len(rows) == len(set(rows)), "duplicate involvement rows"
    return set(rows)


def test_the_test_data_is_meaningful(selection, tracked):
    rows = expected_rows(selection, set(tracked))
    roles = Counter(role for _, _, role in rows)
    per_mail = Counter(kid for kid, _, _ in rows)
    assert roles["victim"] >= 3 and roles["attacker"] >= 100
    assert max(per_mail.values()) >= 50  # a fleet kill: many tracked attackers on one mail
    both = {kid for kid, _, role in rows if role == "victim"} & {
        kid for kid, _, role in rows if role == "attacker"
    }
    assert len(both) >= 1  # tracked characters on both sides of one mail
    assert len(selection) == 43


def plugin():
    return PersistencePlugin(environ={}, dotenv=Path("/nonexistent/.env"))


def test_run_stores_exactly_the_expected_involvements(db, db_url, selection, tracked):
    untracked = next(
        a for a in participants(selection[0])[1] if a not in set(tracked)
    )  # on the map, but not tracked: must not be stored
    entries = [map_entry(cid) for cid in tracked] + [map_entry(untracked, tracked=False)]
    with FakeR2Z2(selection, first=FIRST) as feed, FakeMap("home", KEY, entries) as fake:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            MAP_URL=fake.url,
            MAP_NAME="home",
            MAP_API_KEY=KEY,
            R2Z2_REQUESTS_PER_SECOND=20,
            **FAST,
        )
        persist = plugin()
        with HostThread(settings, [persist]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 43) in feed.paths(), what="the head")
            result = run.stop()
    expected = expected_rows(selection, set(tracked))
    assert stored_rows(db) == expected
    assert untracked not in {cid for _, cid, _ in stored_rows(db)}
    stats = persist.pipeline_stats()
    assert stats.rows_written == len(expected) and stats.dropped == 0 and stats.lost == 0
    assert result.counters.matched == stats.matched == len({k for k, _, _ in expected})
    assert feed_state.load_sequence(db) == FIRST + 42
    tracked_table = db.execute_sql("SELECT character_id FROM tracked_characters").fetchall()
    assert sorted(r[0] for r in tracked_table) == tracked


def test_restart_resumes_with_the_real_plugin(db, db_url, selection, tracked):
    with FakeR2Z2(selection, first=FIRST, published=FIRST + 20) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            R2Z2_REQUESTS_PER_SECOND=20,
            **FAST,
        )
        with HostThread(settings, [plugin()]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 21) in feed.paths(), what="the head")
            run.stop()
        assert stored_rows(db) == expected_rows(selection[:21], set(tracked))
        assert feed_state.load_sequence(db) == FIRST + 20

        feed.publish(FIRST + 42)
        feed.reported_latest = None
        with HostThread(settings, [plugin()]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 43) in feed.paths(), what="the head")
            run.stop()
    assert feed.served() == list(range(FIRST, FIRST + 43))  # none twice, none skipped
    assert stored_rows(db) == expected_rows(selection, set(tracked))
    assert feed_state.load_sequence(db) == FIRST + 42


def test_sigterm_with_work_queued_writes_it_all(backend, db, db_url, tmp_path, selection, tracked):
    """The real command and entry-point plugin: SIGTERM while the writer cannot write (the
    table is locked) waits for the queue, writes it, saves the position, exits 0. (SIGINT
    takes the same path: test_host_signals.py.)"""
    with FakeR2Z2(selection, first=FIRST, published=FIRST) as feed:
        feed.reported_latest = FIRST
        process = start(
            tmp_path,
            db_url,
            feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            R2Z2_REQUESTS_PER_SECOND="20",
            HOST_CHECKPOINT_SECONDS="3600",
            HOST_FLUSH_TIMEOUT="60",
        )
        try:
            wait_for(lambda: FakeR2Z2.path(FIRST + 1) in feed.paths(), what="the first mail")
            with writes_blocked(backend, db_url):
                feed.publish(FIRST + 42)
                wait_for(lambda: FakeR2Z2.path(FIRST + 43) in feed.paths(), what="the head")
                process.send_signal(signal.SIGTERM)
                time.sleep(1.0)
                assert process.poll() is None, "exited while its writes were blocked"
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert stored_rows(db) == expected_rows(selection, set(tracked))
    assert feed_state.load_sequence(db) == FIRST + 42
    assert " 0 dropped, 0 lost" in err


def test_backpressure_keeps_a_small_queue_from_dropping(backend, db, db_url, selection, tracked):
    """The plugin's queue holds 5 mails; the database is locked for a while. The host
    pauses the feed at 3 queued mails instead of letting the plugin drop any."""
    with FakeR2Z2(selection, first=FIRST, published=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            R2Z2_REQUESTS_PER_SECOND=20,
            HOST_MAX_QUEUED=3,
            **FAST,
        )
        persist = PersistencePlugin(
            environ={"PERSISTENCE_QUEUE_SIZE": "5"}, dotenv=Path("/nonexistent/.env")
        )
        with HostThread(settings, [persist]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 1) in feed.paths(), what="the first mail")
            with writes_blocked(backend, db_url):
                feed.publish(FIRST + 42)
                wait_for(lambda: persist.pipeline_stats().queued >= 3, what="a queue")
                time.sleep(2.5)  # unpaused, 20 requests/s would have read all 42 by now
                assert persist.pipeline_stats().queued <= 5
                assert len(feed.served()) <= 1 + 3 + 2  # the feed is paused
            wait_for(lambda: FakeR2Z2.path(FIRST + 43) in feed.paths(), what="the head")
            run.stop()
    assert persist.pipeline_stats().dropped == 0
    assert stored_rows(db) == expected_rows(selection, set(tracked))
