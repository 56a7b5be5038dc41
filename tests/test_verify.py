"""`verify` against a fake of zKillboard's API serving the real corpus (and mails derived
from it), on SQLite and PostgreSQL: holes and extras counted exactly, `--repair` through
the ingest path gives the statistics of a store that never had holes, paging, the rate
limit and a 429 honoured, our User-Agent, the old zkb-only answer repaired through ESI,
and the scheduled job once per tick with its figures in /metrics."""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakes.zkillboard_api import FakeZkillboardApi, derived
from fakes_esi import *  # noqa: F403 - the fake ESI's fixtures
from prometheus_client import generate_latest
from reference_stats import database_statistics

from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.cli import main
from wn_persist_plugin.db.connect import database_proxy
from wn_persist_plugin.db.fields import to_isk
from wn_persist_plugin.db.models import (
    Involvement,
    KillmailStatistics,
    StatisticsRetention,
    TrackedCharacter,
    VerifyRun,
)
from wn_persist_plugin.errors import SourceError
from wn_persist_plugin.ingest import verify as vf
from wn_persist_plugin.ingest.backfill import Backfill, Item
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.settings import load_settings
from wn_persist_plugin.sources.http import user_agent
from wn_persist_plugin.sources.zkill_api import ZkillApiClient, months_between, page_path
from wn_persist_plugin.statistics.aggregation import aggregate
from wn_persist_plugin.statistics.scheduler import Scheduler

UTC = dt.UTC
YEAR_START, YEAR_END = dt.date(2014, 1, 1), dt.date(2014, 12, 31)
"""The corpus's busiest year of mails with zkb blocks (about 180)."""


class VirtualTime:
    """A clock and a sleep that only advances it: waits are recorded, never slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def people(envelope: dict[str, Any]) -> set[int]:
    body = envelope["esi"]
    return {
        p["character_id"] for p in [body["victim"], *body["attackers"]] if p.get("character_id")
    }


def in_year(envelope: dict[str, Any]) -> bool:
    return envelope["esi"]["killmail_time"].startswith("2014-")


@pytest.fixture(scope="module")
def year_mails(real_envelopes) -> list[dict[str, Any]]:
    """The real 2014 mails that carry a zkb block (what zKillboard's API sends)."""
    return [e for e in real_envelopes if e.get("zkb") and in_year(e)]


@pytest.fixture(scope="module")
def busiest(year_mails) -> list[int]:
    """The five characters on most of those mails."""
    counts: dict[int, int] = defaultdict(int)
    for envelope in year_mails:
        for character in people(envelope):
            counts[character] += 1
    return sorted(counts, key=lambda c: (-counts[c], c))[:5]


def client_for(
    api: FakeZkillboardApi, time: VirtualTime | None = None, **kw: Any
) -> ZkillApiClient:
    """A client of the fake without real waiting (the fake's rate limit is off for it)."""
    time = time or VirtualTime()
    return ZkillApiClient(api.url, sleep=time.sleep, clock=time.clock)


def track(ids: list[int]) -> None:
    now = dt.datetime.now(UTC)
    TrackedCharacter.insert_many(
        [{"character_id": i, "tracked": True, "tracked_since": now, "updated_at": now} for i in ids]
    ).execute()


def ingest(db, mails, tracked) -> None:
    """Store `mails` for `tracked` through the ingest path (as the live feed would)."""
    runner = Backfill(db, TrackedSet.of_ids(tracked))
    for mail in mails:
        runner.feed(Item("test", str(mail["killmail_id"]), mail))
    runner.flush()
    assert runner.summary.problems == []


def make_holes(db, mails, tracked) -> tuple[dict[int, set[int]], dict[str, Any]]:
    """Store `mails` for `tracked`, aggregate, then delete some involvements (the holes,
    per character) and return them with the statistics before the holes."""
    ingest(db, mails, tracked)
    aggregate(db)
    before = database_statistics(KillmailStatistics)
    holes: dict[int, set[int]] = defaultdict(set)
    for index, character in enumerate(tracked):
        theirs = sorted(e["killmail_id"] for e in mails if character in people(e))
        for killmail_id in theirs[index % 3 :: 4][:3]:
            holes[character].add(killmail_id)
            Involvement.delete().where(
                (Involvement.killmail_id == killmail_id)
                & (Involvement.related_character_id == character)
            ).execute()
    aggregate(db)
    assert database_statistics(KillmailStatistics) != before
    return holes, before


def expected(mails, tracked, holes, extra_mail) -> dict[int, tuple[int, int, int]]:
    """Per character: (on zKillboard, missing, extra), straight from the raw mails."""
    out = {}
    for character in tracked:
        listed = [e for e in mails if character in people(e) and e is not extra_mail]
        gone = extra_mail["killmail_id"]  # neither listed nor, when a hole, stored
        on_extra = 1 if character in people(extra_mail) and gone not in holes[character] else 0
        out[character] = (len(listed), len(holes[character] - {gone}), on_extra)
    return out


def test_holes_and_extras_are_counted_then_repaired(db, year_mails, busiest):
    holes, before = make_holes(db, year_mails, busiest)
    extra_mail = next(  # stored, but zKillboard does not list it
        e
        for e in year_mails
        if people(e) & set(busiest) and e["killmail_id"] not in set().union(*holes.values())
    )
    served = [e for e in year_mails if e is not extra_mail]
    with FakeZkillboardApi(served, interval=0) as api:
        report = vf.verify(db, busiest, YEAR_START, YEAR_END, client_for(api))
        want = expected(year_mails, busiest, holes, extra_mail)
        got = {c.character_id: (c.on_zkillboard, c.missing, c.extra) for c in report.characters}
        assert got == want
        total = report.total
        assert total.missing == sum(w[1] for w in want.values()) > 0
        assert total.extra == sum(w[2] for w in want.values()) > 0
        assert total.on_zkillboard == sum(w[0] for w in want.values())
        assert total.unpriced == 0 and not report.ok
        for check in report.characters:
            stored = {
                i
                for (i,) in Involvement.select(Involvement.killmail_id)
                .where(Involvement.related_character_id == check.character_id)
                .tuples()
            }
            assert check.stored == len(stored)
        assert Involvement.select().count() > 0
        assert database_statistics(KillmailStatistics) != before  # a check changes nothing

        repaired = vf.verify(db, busiest, YEAR_START, YEAR_END, client_for(api), repair=True)
        # a mail repaired for one character brings the rows of the others on it too
        assert repaired.ok and 0 < repaired.total.repaired == repaired.total.missing
        assert repaired.total.missing <= total.missing
        for character in busiest:
            assert _stored_ids(character) >= holes[character]
        assert repaired.statistics and repaired.statistics.startswith("re-aggregated from")
        assert database_statistics(KillmailStatistics) == before

        again = vf.verify(db, busiest, YEAR_START, YEAR_END, client_for(api), repair=True)
        assert again.total.missing == 0 and again.total.repaired == 0
        assert again.total.extra == total.extra  # extras are reported, never deleted
        assert again.statistics is None


def test_an_interrupted_repair_keeps_what_it_wrote(db, year_mails, busiest):
    holes, before = make_holes(db, year_mails, busiest)
    with FakeZkillboardApi(year_mails, interval=0) as api:
        calls = []
        first = vf.verify(
            db, busiest, YEAR_START, YEAR_END, client_for(api), repair=True,
            should_stop=lambda: len(calls) >= 2, on_character=calls.append,
        )  # fmt: skip
        assert first.stopped and "run again" in first.stopped and not first.ok
        assert [c.character_id for c in first.characters] == busiest[:2]
        for character in busiest[:2]:
            assert _stored_ids(character) >= holes[character]
        done = holes[busiest[0]] | holes[busiest[1]]
        left = {c: holes[c] - done for c in busiest[2:]}
        for character in busiest[2:]:
            assert not _stored_ids(character) & left[character]
        second = vf.verify(db, busiest, YEAR_START, YEAR_END, client_for(api), repair=True)
        assert second.ok and second.total.missing == second.total.repaired > 0
        for character in busiest:
            assert _stored_ids(character) >= holes[character]
        assert database_statistics(KillmailStatistics) == before


def _stored_ids(character: int) -> set[int]:
    query = Involvement.select(Involvement.killmail_id).where(
        Involvement.related_character_id == character
    )
    return {i for (i,) in query.tuples()}


def test_pages_of_200_newest_first_until_a_short_page(db, real_envelopes):
    base = next(e for e in real_envelopes if e.get("zkb") and len(e["esi"]["attackers"]) < 5)
    pilot = 2_100_000_001
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    mails = [
        derived(base, 9_000_000 + i, start + dt.timedelta(minutes=97 * i), victim=pilot)
        for i in range(450)
    ]
    assert mails[-1]["esi"]["killmail_time"].startswith("2026-01-31")
    with FakeZkillboardApi(mails, interval=0) as api:
        client = client_for(api)
        listed = list(client.killmails(pilot, dt.date(2026, 1, 1), dt.date(2026, 1, 31)))
        assert [e.killmail_id for e in listed] == sorted(
            (m["killmail_id"] for m in mails), reverse=True
        )
        assert api.paths() == [
            "/api/characterID/2100000001/year/2026/month/1/",
            "/api/characterID/2100000001/year/2026/month/1/page/2/",
            "/api/characterID/2100000001/year/2026/month/1/page/3/",
        ]
        # a range at the month's end stops at the first page older than its start
        api.requests.clear()
        late = list(client.killmails(pilot, dt.date(2026, 1, 25), dt.date(2026, 1, 31)))
        assert len(api.paths()) == 2 and len(late) == 400
        ingest(db, mails[::2], {pilot})
        report = vf.verify(db, [pilot], dt.date(2026, 1, 1), dt.date(2026, 1, 31), client_for(api))
        [check] = report.characters
        assert (check.on_zkillboard, check.stored, check.missing, check.extra) == (450, 225, 225, 0)
        assert report.requests == 3


def test_the_rate_limit_is_kept_without_a_429(year_mails, busiest):
    """The real pacing (one request a second) against the fake's real rate limit."""
    with FakeZkillboardApi(year_mails) as api:  # 1 request/s per address, else 429
        client = ZkillApiClient(api.url, contact="ops@example.com")
        entries = list(client.killmails(busiest[0], dt.date(2014, 10, 1), YEAR_END))
        assert len(api.paths()) == 3 and api.paths(429) == []
        assert {e.killmail_id for e in entries} == {
            e["killmail_id"]
            for e in year_mails
            if busiest[0] in people(e) and e["esi"]["killmail_time"] >= "2014-10"
        }
        assert api.user_agents() == {user_agent("ops@example.com")}


def test_a_429_is_waited_out_for_its_retry_after(db, year_mails, busiest):
    time = VirtualTime()
    ingest(db, year_mails, {busiest[0]})
    with FakeZkillboardApi(year_mails, interval=0) as api:
        api.rate_limit_once(7)
        client = client_for(api, time)
        report = vf.verify(db, busiest[:1], dt.date(2014, 12, 1), YEAR_END, client)
        assert report.ok and report.total.missing == 0
        assert [r.status for r in api.requests] == [429, 200]
        assert api.paths()[0] == api.paths()[1]
        assert time.waits == [7.0] and client.rate_limited == 1


def test_old_zkb_only_answers_are_repaired_from_esi(
    db, year_mails, busiest, fake_server, esi_client
):
    holes, before = make_holes(db, year_mails, busiest)
    with FakeZkillboardApi(year_mails, interval=0) as api:
        api.old_shape = True
        report = vf.verify(
            db, busiest, YEAR_START, YEAR_END, client_for(api), repair=True, esi=esi_client
        )
        assert report.ok and all(c.whole_months for c in report.characters)
        assert 0 < report.total.repaired == report.total.missing
        for character in busiest:
            assert _stored_ids(character) >= holes[character]
        fetched = {int(p.split("/")[2]) for _, p, _ in fake_server.asked("/killmails/")}
        assert fetched == set().union(*holes.values())
        assert database_statistics(KillmailStatistics) == before
        assert vf.verify(db, busiest, YEAR_START, YEAR_END, client_for(api)).ok


def test_retention_boundary_and_errors(db, year_mails, busiest):
    StatisticsRetention.insert(
        id=1, pruned_before=dt.date(2014, 12, 1), updated_at=dt.datetime.now(UTC)
    ).execute()
    with FakeZkillboardApi(year_mails, interval=0) as api:
        report = vf.verify(db, busiest[:1], YEAR_START, YEAR_END, client_for(api))
        assert report.start == dt.date(2014, 12, 1)
        assert api.paths() == [f"/api{page_path(busiest[0], 2014, 12, 1)}"]
        broken = ZkillApiClient(f"{api.root}/nonsense", sleep=lambda s: None)
        with pytest.raises(SourceError, match="nonsense is an invalid parameter"):
            broken.page(busiest[0], 2014, 12)
        stopped = vf.verify(db, busiest[:2], YEAR_START, YEAR_END, broken)
        assert stopped.stopped and "nonsense is an invalid parameter" in stopped.stopped
        assert "\n" not in stopped.stopped and stopped.characters == []


def test_the_fake_keeps_zkillboards_contract(year_mails):
    with FakeZkillboardApi(year_mails, interval=0) as api:
        import requests

        def get(path: str) -> requests.Response:
            return requests.get(api.root + path, allow_redirects=False, timeout=5)

        assert get("/api/characterID/1/?x=1").status_code == 403
        for path, words in (
            ("/api/characterID/01/", "Do not prefix values with 0"),
            ("/api/year/2014/month/1/", "Please provide an entity filter first."),
            ("/api/characterID/1/page/101/", "page value > 100 not allowed"),
            ("/api/characterID/1/year/2006/", "2006 is not a valid entry for year"),
            ("/api/characterID/1/month/13/", "13 is not a valid entry for month"),
            ("/api/characterID/1/limit/10/", "revoked"),
            ("/api/characterID/1/startTime/201401010000/", "no longer supported"),
            ("/api/characterID/1/beforeKillID/5/", "permanently disabled"),
            ("/api/characterID/1/pastSeconds/700000/", "max of 7 days"),
            ("/api/characterID/1/json/", "No need to refer to json"),
        ):
            answer = get(path)
            assert answer.status_code == 200 and words in answer.json()["error"], path
        assert get("/api/characterID/1/").headers["Cache-Control"] == "public, max-age=3600"
        for _ in range(40):
            get("/api/characterID/1/orderDirection/asc/")
        blocked = get("/api/characterID/1/orderDirection/asc/")
        assert blocked.status_code == 302 and blocked.headers["Location"] == "/api/blocked.json"
        api.reinforced = True
        assert get("/api/characterID/1/").status_code == 503


def test_months_and_paths():
    assert months_between(dt.date(2025, 11, 20), dt.date(2026, 2, 1)) == [
        (2026, 2), (2026, 1), (2025, 12), (2025, 11),
    ]  # fmt: skip
    assert page_path(5, 2026, 3, 1) == "/characterID/5/year/2026/month/3/"
    assert page_path(5, 2026, 3, 2) == "/characterID/5/year/2026/month/3/page/2/"


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def cli_database(db):
    """The CLI binds the models to the database it opens; give them back afterwards."""
    yield
    if database_proxy.obj is not db:
        database_proxy.obj.close()
        database_proxy.initialize(db)


def test_cli_verify_and_repair(
    db, db_url, year_mails, busiest, monkeypatch, tmp_path, cli_database
):
    pilot = busiest[0]
    december = [e for e in year_mails if e["esi"]["killmail_time"].startswith("2014-12")]
    mine = [e for e in december if pilot in people(e)]
    assert len(mine) >= 3
    track([pilot])
    ingest(db, [e for e in december if e not in mine[:2]], {pilot})
    missing = 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    with FakeZkillboardApi(december) as api:  # the real rate limit: the CLI keeps it
        monkeypatch.setenv("ZKILLBOARD_API_URL", api.url)
        args = ["verify", "--from", "2014-12-01", "--to", "2014-12-31"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        [line] = [x for x in result.output.splitlines() if x.startswith(str(pilot))]
        assert f"missing {missing:>5}" in line and "extra     0" in line
        [total] = [x for x in result.output.splitlines() if x.startswith("total")]
        assert f"on zKillboard {len(mine):>6}" in total
        result = CliRunner().invoke(main, [*args, "--repair"])
        assert result.exit_code == 0, result.output
        [line] = [x for x in result.output.splitlines() if x.startswith(str(pilot))]
        assert f"repaired {missing:>5}" in line
        assert _stored_ids(pilot) == {e["killmail_id"] for e in mine}
        result = CliRunner().invoke(main, ["verify", "--from", "2014-12-31", "--to", "2014-12-01"])
        assert result.exit_code == 2 and "--to" in result.output
        result = CliRunner().invoke(main, ["verify", "--from", "2014-13-01", "--to", "2014-12-01"])
        assert result.exit_code == 2
        monkeypatch.setenv("ZKILLBOARD_API_URL", f"{api.root}/nonsense")
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert (
            result.output.strip().splitlines()[-1].startswith("wn-persist: error: zKillboard API")
        )
        assert "Traceback" not in result.output
    assert VerifyRun.select().count() == 3  # the two that went through and the stopped one


# -- the scheduled job ----------------------------------------------------------------------


def test_scheduled_verify_once_per_tick_with_metrics(db, db_url, real_envelopes, fake_server):
    base = next(e for e in real_envelopes if e.get("zkb") and len(e["esi"]["attackers"]) < 5)
    pilot = 2_100_000_002
    now = dt.datetime.now(UTC)
    mails = [
        derived(base, 9_100_000 + i, now - dt.timedelta(hours=2 + 5 * i), victim=pilot)
        for i in range(6)
    ]
    track([pilot])
    ingest(db, mails[2:], {pilot})
    with FakeZkillboardApi(mails) as api:
        settings = load_settings(
            environ={
                "DATABASE_URL": db_url,
                "ZKILLBOARD_API_URL": api.url,
                "ESI_BASE_URL": fake_server.url,
                "PERSISTENCE_VERIFY_SCHEDULE": "*/5 * * * *",
                "PERSISTENCE_VERIFY_DAYS": "2",
            },
            dotenv=Path("/nonexistent/.env"),
        )
        tick = now.replace(microsecond=0)
        first, second = Scheduler(settings, db), Scheduler(settings, db)
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(s.run_verify_now(tick)))
            for s in (first, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results)[0].startswith("1 characters") and len(results) == 2, results
        assert sorted(results)[1] in ("already done", "busy"), results
        assert first.run_verify_now(tick) == "already done"
        assert VerifyRun.select().where(VerifyRun.scheduled).count() == 1
        run = vf.last_verify_run(db)
        assert run is not None and (run.missing, run.repaired, run.extra) == (0, 2, 0)
        assert _stored_ids(pilot) == {m["killmail_id"] for m in mails}
        text = generate_latest(make_registry(db)).decode()
        assert "wn_persist_verify_missing 0.0" in text
        assert "wn_persist_verify_repaired 2.0" in text
        assert "wn_persist_verify_extra 0.0" in text
        assert "wn_persist_verify_unpriced 0.0" in text
        assert "wn_persist_verify_last_run_timestamp_seconds" in text
        api.reinforced = True  # a failure is one line, and the next tick tries again
        failing = Scheduler(settings, db, verify_job=_failing_job)
        assert failing.run_verify_now(tick).startswith("failed: SourceError: zKillboard API")
        assert failing.verify_failures == 1


def _failing_job(db: Any, tick: Any, should_stop: Any) -> str:
    raise SourceError("zKillboard API: /characterID/1/: HTTP 503 (Reinforced mode)")


def test_a_pool_too_small_for_the_verification_thread_is_refused():
    from wn_persist_plugin.errors import ConfigError

    with pytest.raises(ConfigError, match="POSTGRES_POOL_SIZE"):
        load_settings(
            environ={"POSTGRES_POOL_SIZE": "2", "PERSISTENCE_VERIFY_SCHEDULE": "0 3 * * *"},
            dotenv=Path("/nonexistent/.env"),
        )


def test_a_verify_tick_runs_in_its_own_thread_and_skips_while_busy(db, db_url):
    settings = load_settings(
        environ={"DATABASE_URL": db_url, "PERSISTENCE_VERIFY_SCHEDULE": "0 3 * * *"},
        dotenv=Path("/nonexistent/.env"),
    )
    release = threading.Event()
    calls: list[tuple[Any, str]] = []

    def job(db: Any, tick: Any, should_stop: Any) -> str:
        calls.append((tick, threading.current_thread().name))
        release.wait(20)
        return "done"

    now = dt.datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)
    scheduler = Scheduler(settings, db, clock=lambda: now, verify_job=job)
    scheduler.verify_next_fire = now
    scheduler._fire_verify()
    assert scheduler.verifying  # the statistics thread is free meanwhile
    scheduler.verify_next_fire = now
    scheduler._fire_verify()  # a tick that finds it still running: skipped
    release.set()
    scheduler._verify_thread.join(20)
    assert calls == [(now, "wn-persist-verify")]
    assert scheduler.last_verify_result == "done" and scheduler.verify_runs == 1
    assert scheduler.verify_next_fire == dt.datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def test_unpriced_mails_take_zkillboards_values_and_statistics_follow(db, year_mails, busiest):
    pilot = busiest[0]
    mine = [e for e in year_mails if pilot in people(e)]
    bare = [{**e, "zkb": None} for e in mine[:3]]  # stored without a value (EVE Ref, ESI)
    ingest(db, [*bare, *mine[3:]], {pilot})
    aggregate(db)
    with FakeZkillboardApi(year_mails, interval=0) as api:
        listed = {e.killmail_id: e for e in client_for(api).killmails(pilot, YEAR_START, YEAR_END)}
        assert set(vf.collect_zkb_values(db, pilot, listed)) == {e["killmail_id"] for e in bare}
        report = vf.verify(db, [pilot], YEAR_START, YEAR_END, client_for(api))
        assert report.ok and report.total.unpriced == 3 and report.zkb_values == 3
        again = vf.verify(db, [pilot], YEAR_START, YEAR_END, client_for(api))
    assert again.total.unpriced == 0 and again.zkb_values == 0  # nothing left to value
    assert vf.collect_zkb_values(db, pilot, listed) == {}
    for e in bare:
        rows = list(Involvement.select().where(Involvement.killmail_id == e["killmail_id"]))
        assert {(r.value_source, r.total_value) for r in rows} == {
            ("zkb", to_isk(Decimal(str(mine[bare.index(e)]["zkb"]["totalValue"]))))
        }
    # the periods were re-aggregated: the statistics equal a store that had the values
    fresh = database_statistics(KillmailStatistics)
    Involvement.delete().execute()
    ingest(db, mine, {pilot})
    aggregate(db, rebuild=True)
    assert database_statistics(KillmailStatistics) == fresh


def test_reinforced_mode_and_a_blocked_address_are_unavailable(year_mails, busiest):
    from wn_persist_plugin.errors import SourceUnavailable

    time = VirtualTime()
    with FakeZkillboardApi(year_mails, interval=0) as api:
        api.reinforced = True
        client = client_for(api, time)
        with pytest.raises(SourceUnavailable, match=r"HTTP 503 \(503 Reinforced mode.*4 tries"):
            client.page(busiest[0], 2014, 12)
        assert [r.status for r in api.requests] == [503] * 4 and time.waits == [2.0, 4.0, 8.0]
        api.reinforced = False
        refused = ZkillApiClient(f"{api.root}/nonsense", sleep=time.sleep, clock=time.clock)
        for _ in range(40):
            with pytest.raises(SourceError, match="nonsense is an invalid parameter"):
                refused.page(busiest[0], 2014, 12)
        with pytest.raises(SourceUnavailable, match="/api/blocked.json"):
            refused.page(busiest[0], 2014, 12)  # the 41st refusal is a redirect
        assert client.page(busiest[0], 2014, 12)  # zKillboard redirects refusals only
