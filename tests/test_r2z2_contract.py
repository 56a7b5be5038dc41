"""The R2Z2 client and host against a feed that behaves as the real one: `sequence.json`
lagging the newest object, 404 just past the head until the next mail is published, and a
repriced mail republished with `sequence_updated`."""

from __future__ import annotations

import threading
from pathlib import Path

from fakes.r2z2 import FakeR2Z2
from fakes.recording import FAST, HostThread, settings_for, wait_for

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.plugin import PersistencePlugin
from wn_persist_plugin.sources.http import user_agent
from wn_persist_plugin.sources.r2z2 import R2Z2Client

FIRST = 90_000_000
CONTACT = "ops@example.invalid"


def test_a_404_past_a_lagging_sequence_json_is_waited_out(real_envelopes):
    with FakeR2Z2(real_envelopes[:70], first=FIRST, published=FIRST + 59) as feed:
        feed.lag = 50  # sequence.json says FIRST + 9 while FIRST + 59 is out
        client = R2Z2Client(
            feed.url, not_found_wait=0.05, timeout=1, requests_per_second=20, contact=CONTACT
        )
        stop = threading.Event()
        assert client.latest_sequence(stop) == FIRST + 9
        got = [client.next_mail(n, stop).sequence for n in range(FIRST + 9, FIRST + 60)]
        assert got == list(range(FIRST + 9, FIRST + 60))
        # Just past the head: not published yet. The client keeps asking for the same
        # sequence (as the feed documents) and skips nothing, however long it takes.
        timer = threading.Timer(1.0, feed.publish, args=(FIRST + 69,))
        timer.start()
        delivery = client.next_mail(FIRST + 60, stop)
        timer.join()
        assert delivery is not None and delivery.sequence == FIRST + 60
        assert delivery.skipped == 0 and client.counters.skipped_sequences == 0
        assert client.counters.not_found >= 5
        assert {r.headers["user-agent"] for r in feed.requests} == {user_agent(CONTACT)}


def test_a_repriced_republication_reaches_the_store(db, db_url, real_envelopes):
    mail = next(
        e
        for e in real_envelopes
        if e["esi"]["victim"].get("character_id") and (e.get("zkb") or {}).get("totalValue")
    )
    victim = mail["esi"]["victim"]["character_id"]
    with FakeR2Z2([mail], first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=victim,
            USER_AGENT_CONTACT=CONTACT,
            **FAST,
        )
        persist = PersistencePlugin(environ={}, dotenv=Path("/nonexistent/.env"))
        with HostThread(settings, [persist]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST) in feed.paths(200), what="the mail")
            wait_for(lambda: Involvement.select().count() == 1, what="the first write")
            first = Involvement.get()
            repriced = float(mail["zkb"]["totalValue"]) + 1_000_000.0
            again = feed.republish(FIRST, totalValue=repriced)
            wait_for(lambda: FakeR2Z2.path(again) in feed.paths(200), what="the republication")
            wait_for(lambda: float(Involvement.get().total_value) == repriced, what="the new value")
            run.stop()
        row = Involvement.get()
        assert Involvement.select().count() == 1
        assert float(row.zkb_data["totalValue"]) == repriced
        assert row.processed_at > first.processed_at
        assert {r.headers["user-agent"] for r in feed.requests} == {user_agent(CONTACT)}
