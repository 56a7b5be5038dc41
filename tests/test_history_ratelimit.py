"""zKillboard history against fakes that enforce ESI's killmail rate limit: bodies come from
EVE Ref's daily archive, ESI only for the rest, paced by its `X-Ratelimit-*` headers."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures
from test_backfill import add_tracked, characters, expected_keys, stored_keys

from wn_persist_plugin.db.models import BackfillCursor
from wn_persist_plugin.ingest.backfill import backfill_zkill_history, parse_day_range
from wn_persist_plugin.settings import EsiSettings
from wn_persist_plugin.sources.esi import EsiClient
from wn_persist_plugin.sources.everef import EveRefClient
from wn_persist_plugin.sources.http import user_agent
from wn_persist_plugin.sources.ratelimit import Stopped
from wn_persist_plugin.sources.zkill_history import ZkillHistoryClient

CONTACT = "ops@example.invalid"
AGENT = user_agent(CONTACT)
DAY_VOLUME = 25_000
FROM_ESI = 400


def clients(server, **esi_values):
    values = {"base_url": server.url, "timeout": 5, "max_retries": 3, "max_wait": 30}
    esi = EsiClient(EsiSettings(**{**values, **esi_values}), contact=CONTACT)
    history = ZkillHistoryClient(server.url + "/history", contact=CONTACT)
    everef = EveRefClient(server.url, contact=CONTACT)
    return esi, history, everef


def assert_every_request_identified(server):
    agents = server.user_agents()
    assert agents and set(agents) == {AGENT}


def busiest_day(server) -> tuple[str, dict[str, str]]:
    return max(server.history.items(), key=lambda item: len(item[1]))


def synthetic_day(server, real_envelopes, day: str) -> tuple[list[dict], list[int]]:
    """`DAY_VOLUME` mails made from the real ones (new ids; items and all but the first
    ten attackers dropped to keep the archive small): zKillboard lists them all, EVE Ref's
    archive lacks `FROM_ESI`."""
    mails, pairs = [], []
    for n in range(DAY_VOLUME):
        real = real_envelopes[n % len(real_envelopes)]["esi"]
        killmail_id = 200_000_000 + n
        hash_ = f"{n:040x}"
        body = {
            **real,
            "killmail_id": killmail_id,
            "victim": {k: v for k, v in real["victim"].items() if k != "items"},
            "attackers": real["attackers"][:10],
        }
        server.killmails[(killmail_id, hash_)] = body
        mails.append({"killmail_id": killmail_id, "hash": hash_, "esi": body})
        pairs.append((killmail_id, hash_))
    server.history[day.replace("-", "")] = {str(k): h for k, h in pairs}
    step = DAY_VOLUME // FROM_ESI
    missing = {pairs[i][0] for i in range(0, DAY_VOLUME, step)}
    server.archives[day] = [p for p in pairs if p[0] not in missing]
    return mails, sorted(missing)


def test_a_25k_mail_day_completes_without_429s_or_lost_mails(db, fake_server, real_envelopes):
    # A small bucket (300 tokens per 2 s, written as ESI writes it) makes the pacing work:
    # the 400 mails missing from the archive cost 800 tokens.
    fake_server.rate_limit(300, 2.0, "300/2s")
    day = "2024-05-01"
    mails, missing = synthetic_day(fake_server, real_envelopes, day)
    tracked = characters(real_envelopes[:1])
    add_tracked(tracked)
    esi, history, everef = clients(fake_server)
    start, end = parse_day_range(day)
    began = time.monotonic()
    summary = backfill_zkill_history(
        db, start, end, esi=esi, history=history, everef=everef, workers=4, enrich=False
    )
    elapsed = time.monotonic() - began
    assert summary.ok, (summary.stopped, summary.problems[:5])
    assert summary.mails_read == DAY_VOLUME
    assert fake_server.statuses(429) == []
    asked = sorted(
        int(p.split("/")[2])
        for p in fake_server.statuses(200)
        if "/killmails/" in p and not p.endswith(".tar.bz2")
    )
    assert asked == missing  # ESI only for what the archive lacked, each once
    assert esi.pacer.waited > 0  # the bucket did run low: pacing, not luck
    assert stored_keys() == expected_keys(mails, set(tracked))
    assert BackfillCursor.get().done is True
    assert_every_request_identified(fake_server)
    assert elapsed < 120


def test_without_an_archive_every_body_comes_from_esi(db, fake_server, real_envelopes):
    day, index = busiest_day(fake_server)
    stamp = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    fake_server.archive_missing.add(stamp)
    envelopes = [e for e in real_envelopes if str(e["killmail_id"]) in index]
    tracked = characters(envelopes)
    esi, history, everef = clients(fake_server)
    start, end = parse_day_range(day)
    summary = backfill_zkill_history(
        db, start, end, esi=esi, history=history, everef=everef, track=tracked, enrich=False
    )
    assert summary.ok, (summary.stopped, summary.problems)
    assert len(fake_server.statuses(200)) == len(index) + 1  # the bodies and the day file
    assert stored_keys() == expected_keys(envelopes, set(tracked))
    assert_every_request_identified(fake_server)


def test_archive_first_then_esi_for_the_rest(db, fake_server, real_envelopes):
    day, index = busiest_day(fake_server)
    stamp = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    pairs = sorted((int(k), v) for k, v in index.items())
    fake_server.archives[stamp] = pairs[2:]
    envelopes = [e for e in real_envelopes if str(e["killmail_id"]) in index]
    tracked = characters(envelopes)
    esi, history, everef = clients(fake_server)
    start, end = parse_day_range(day)
    summary = backfill_zkill_history(
        db, start, end, esi=esi, history=history, everef=everef, track=tracked, enrich=False
    )
    assert summary.ok, (summary.stopped, summary.problems)
    from_esi = [p for _, p, _ in fake_server.asked("/killmails/") if not p.endswith(".bz2")]
    assert sorted(int(p.split("/")[2]) for p in from_esi) == [k for k, _ in pairs[:2]]
    assert stored_keys() == expected_keys(envelopes, set(tracked))
    assert_every_request_identified(fake_server)


def test_the_last_two_days_are_read_again(db, fake_server, real_envelopes):
    day, index = busiest_day(fake_server)
    old = dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    tracked = characters(real_envelopes)
    esi, history, everef = clients(fake_server)

    def run(today: dt.date):
        fake_server.requests.clear()
        return backfill_zkill_history(
            db, old, old, esi=esi, history=history, everef=everef, track=tracked,
            enrich=False, today=today,
        )  # fmt: skip

    # Yesterday's file is not complete: read, kept open, read again next time.
    assert run(old + dt.timedelta(days=1)).days == 1
    assert BackfillCursor.get().done is False
    second = run(old + dt.timedelta(days=1))
    assert second.days == 1 and second.days_skipped == 0
    assert fake_server.asked(f"/history/{day}.json")
    # Two days later it is done, and read once more for the last time.
    assert run(old + dt.timedelta(days=2)).days == 1
    assert BackfillCursor.get().done is True
    later = run(old + dt.timedelta(days=3))
    assert later.days_skipped == 1 and fake_server.requests == []


def test_a_rate_limit_429_is_waited_out_even_beyond_max_wait(fake_server, fake_data):
    (killmail_id, hash_), _ = next(iter(fake_server.killmails.items()))
    fake_server.rate_limit(10, 2.0, "10/2s")
    fake_server.bucket.spent.append((time.monotonic(), 10))  # someone else emptied it
    esi, _, _ = clients(fake_server, max_wait=0.5)
    seen: list[str] = []
    esi.pacer.on_wait = lambda seconds, why: seen.append(why)
    began = time.monotonic()
    body = esi.killmail(killmail_id, hash_)
    assert body["killmail_id"] == killmail_id
    assert len(fake_server.statuses(429)) == 1  # asked once blind, then waited
    assert time.monotonic() - began >= 1.0
    assert seen and "killmail: 429" in seen[0]
    assert esi.pacer.rate_limited == 1


def test_stopping_wakes_a_request_waiting_for_the_bucket(fake_server):
    (killmail_id, hash_), _ = next(iter(fake_server.killmails.items()))
    fake_server.rate_limit(10, 60.0, "10/1m")
    esi, _, _ = clients(fake_server)
    esi.killmail(killmail_id, hash_)  # learns the group: 8 of 10 tokens left
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            esi.killmail(killmail_id, hash_)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    time.sleep(0.3)
    esi.pacer.stop()
    worker.join(5)
    assert not worker.is_alive() and isinstance(errors[0], Stopped)


def test_esi_is_called_at_its_root_with_a_compatibility_date(fake_server):
    esi, _, _ = clients(fake_server, compatibility_date=dt.date(2025, 9, 30))
    esi.region(10000002)
    ((_, path, headers),) = fake_server.received
    assert path == "/universe/regions/10000002/" and "latest" not in path
    assert headers["x-compatibility-date"] == "2025-09-30"
    assert headers["user-agent"] == AGENT


@pytest.mark.parametrize("status", [404, 503])
def test_everef_failures_are_one_line(fake_server, tmp_path, status):
    from wn_persist_plugin.errors import SourceNotFound, SourceUnavailable

    _, _, everef = clients(fake_server)
    day = dt.date(2024, 5, 1)
    if status == 503:
        fake_server.down = True
    with pytest.raises(SourceNotFound if status == 404 else SourceUnavailable) as info:
        everef.download(day, tmp_path / "a.tar.bz2")
    message = str(info.value)
    assert "\n" not in message and message.startswith("EVE Ref: ")
    assert "/killmails/2024/killmails-2024-05-01.tar.bz2" in message
    assert not (tmp_path / "a.tar.bz2").exists()
