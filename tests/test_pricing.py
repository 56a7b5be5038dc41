"""Mails without a zKillboard value priced from ESI's market prices (the fake ESI), and a
zKillboard value arriving later replacing the estimate, on both databases."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from decimal import ROUND_HALF_UP, Decimal

import pytest
from click.testing import CliRunner
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures
from reference_stats import envelope
from test_backfill import write_archive

from wn_persist_plugin import __version__
from wn_persist_plugin.cli import main
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import Involvement, KillmailStatistics, MarketPrice
from wn_persist_plugin.enrichment import pricing
from wn_persist_plugin.ingest.backfill import backfill_paths
from wn_persist_plugin.ingest.library import maybe_persist_killmail
from wn_persist_plugin.settings import load_settings
from wn_persist_plugin.statistics import queries as sq
from wn_persist_plugin.statistics.aggregation import aggregate
from wn_persist_plugin.statistics.scheduler import Scheduler

KILL = 52844772
"""A real mail (EVE Ref shape, no zkb) whose victim carries 138 items, four of them
containers with items inside."""
ZKB = {
    "locationID": 40009082,
    "hash": "732b783768e1e3cc607b38135f7babb8205c8d52",
    "fittedValue": 10.0,
    "droppedValue": 20.0,
    "destroyedValue": 30.0,
    "totalValue": 987654321.09,
    "points": 1,
    "npc": False,
    "solo": True,
    "awox": False,
}
"""zKillboard's block for KILL as its per-character API would return it (made up)."""


def corpus(real_envelopes, killmail_id: int = KILL) -> dict:
    """The real mail as an EVE Ref archive holds it: the bare ESI body, no zkb."""
    env = next(e for e in real_envelopes if e["killmail_id"] == killmail_id)
    return copy.deepcopy(env["esi"])


def attacker_of(body: dict) -> int:
    return next(a["character_id"] for a in body["attackers"] if a.get("character_id"))


def hand_priced(victim: dict, served: list[dict]) -> Decimal:
    """The value worked out independently: every item, however deep, flattened with a
    stack; each (destroyed + dropped) x average price; blueprint copies and types without
    an average count nothing; the hull once."""
    price = {
        e["type_id"]: Decimal(repr(e["average_price"])) for e in served if "average_price" in e
    }
    total = price[victim["ship_type_id"]]
    stack = list(victim.get("items", []))
    while stack:
        item = stack.pop()
        stack.extend(item.get("items", []))
        if item.get("singleton") == 2:
            continue
        count = item.get("quantity_destroyed", 0) + item.get("quantity_dropped", 0)
        total += price.get(item["item_type_id"], Decimal(0)) * count
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def stored(killmail_id: int = KILL) -> list[Involvement]:
    return list(Involvement.select().where(Involvement.killmail_id == killmail_id))


def daily_isk(db, character_id: int) -> Decimal:
    return sq.character_periods(db, character_id, "daily")[0]["isk_destroyed"]


def price_requests(fake_server) -> int:
    return len(fake_server.asked("/markets/prices/"))


@pytest.fixture
def unpriced(db, real_envelopes):
    """KILL stored for one tracked attacker (not the victim), as backfill from EVE Ref
    stores it: no value; returns (body, tracked attacker)."""
    body = corpus(real_envelopes)
    who = attacker_of(body)
    result = maybe_persist_killmail(body, {who: "Tracked Pilot"})
    assert result.status == "stored" and result.rows == 1
    return body, who


def test_an_attacker_row_of_a_mail_without_value_keeps_the_victims_items(unpriced):
    body, _ = unpriced
    (row,) = stored()
    assert row.character_role == "attacker"
    assert row.total_value is None and row.value_source == "none"
    assert row.victim_data["items"] == body["victim"]["items"]


def test_a_mail_is_priced_from_market_prices_to_the_cent(db, unpriced, esi_client, fake_server):
    body, _ = unpriced
    expected = hand_priced(body["victim"], fake_server.market_prices)
    hull = {e["type_id"]: e for e in fake_server.market_prices}[body["victim"]["ship_type_id"]]
    nested = [i for i in body["victim"]["items"] if i.get("items")]
    assert nested and expected > Decimal(repr(hull["average_price"]))  # items count
    before = stored()[0].processed_at

    summary = pricing.run(db, esi_client)

    assert (summary.seen, summary.priced, summary.unpriced) == (1, 1, 0)
    assert summary.prices is not None and summary.prices.fetched
    (row,) = stored()
    assert row.value_source == "esi_prices"
    assert row.total_value == expected
    assert row.processed_at > before
    # ESI asked once, with our User-Agent
    (_, _, headers), *_ = [r for r in fake_server.received if r[1] == "/markets/prices/"]
    assert headers["user-agent"].startswith(f"wn-persist/{__version__} (")


def test_items_without_a_price_count_nothing_and_a_hull_without_one_stays_unpriced(
    db, esi_client, fake_server
):
    fake_server.market_prices = [
        {"type_id": 587, "average_price": 1000.5, "adjusted_price": 990.0},
        {"type_id": 2048, "adjusted_price": 3.0},  # traded, but no average
        {"type_id": 3170, "average_price": 0.07},
        {"type_id": 11999, "adjusted_price": 7.0},
    ]
    priced = envelope(1, "2026-11-01T10:00:00Z", attackers=[9001], value=None)
    priced["esi"]["victim"]["items"] = [
        {"item_type_id": 2048, "quantity_destroyed": 3, "singleton": 0, "flag": 5},
        {
            "item_type_id": 587,
            "quantity_dropped": 1,
            "singleton": 0,
            "flag": 5,
            "items": [
                {"item_type_id": 3170, "quantity_destroyed": 1000, "singleton": 0, "flag": 0},
                {"item_type_id": 3170, "quantity_dropped": 3, "singleton": 0, "flag": 0},
                {"item_type_id": 587, "quantity_dropped": 1, "singleton": 2, "flag": 0},  # BPC
            ],
        },
        {"item_type_id": 99999999, "quantity_destroyed": 5, "singleton": 0, "flag": 5},
    ]
    no_hull_price = envelope(2, "2026-11-01T11:00:00Z", attackers=[9001], value=None)
    no_hull_price["esi"]["victim"]["ship_type_id"] = 11999
    for env in (priced, no_hull_price):
        assert maybe_persist_killmail(env, {9001: "me"}).rows == 1

    summary = pricing.run(db, esi_client)

    assert (summary.seen, summary.priced, summary.unpriced) == (2, 1, 1)
    # 1000.50 hull + 1000.50 container + 1003 x 0.07 = 2071.21
    assert stored(1)[0].total_value == Decimal("2071.21")
    assert stored(2)[0].value_source == "none" and stored(2)[0].total_value is None
    assert summary.line() == "2 mails had no value: 1 priced from market prices, 1 still unpriced"


def test_a_zkb_value_through_the_ingest_path_replaces_the_estimate(
    db, unpriced, esi_client, fake_server
):
    body, who = unpriced
    pricing.run(db, esi_client)
    aggregate(db)
    estimate = stored()[0].total_value
    assert daily_isk(db, who) == estimate
    # A redelivery without a value changes nothing.
    maybe_persist_killmail(body, {who: "Tracked Pilot"})
    assert stored()[0].value_source == "esi_prices"
    priced_at = stored()[0].processed_at

    with_zkb = {"killmail_id": KILL, "hash": ZKB["hash"], "esi": body, "zkb": ZKB}
    assert maybe_persist_killmail(with_zkb, {who: "Tracked Pilot"}).status == "stored"

    (row,) = stored()
    assert row.value_source == "zkb" and row.total_value == Decimal("987654321.09")
    assert row.zkb_data["totalValue"] == ZKB["totalValue"] and row.solo
    assert row.processed_at > priced_at
    aggregate(db)
    assert daily_isk(db, who) == Decimal("987654321.09") != estimate
    # Neither pricing nor a plain redelivery with another value replaces zKillboard's.
    assert pricing.run(db, esi_client).seen == 0
    other = {**with_zkb, "zkb": {**ZKB, "totalValue": 5.0}}
    maybe_persist_killmail(other, {who: "Tracked Pilot"})
    assert stored()[0].total_value == Decimal("987654321.09")


def test_apply_zkb_values_replaces_estimates_and_missing_values_only(
    db, unpriced, esi_client, fake_server
):
    _, who = unpriced
    valued = envelope(11, "2016-03-27T13:00:00Z", attackers=[who], value="1000.00")
    missing = envelope(12, "2016-03-27T14:00:00Z", attackers=[who], value=None)
    missing["esi"]["victim"]["ship_type_id"] = 0  # no price: stays without a value
    for env in (valued, missing):
        assert maybe_persist_killmail(env, {who: "Tracked Pilot"}).rows == 1
    pricing.run(db, esi_client)
    aggregate(db)
    estimate = stored()[0].total_value
    assert stored()[0].value_source == "esi_prices" and stored(12)[0].value_source == "none"
    assert daily_isk(db, who) == estimate + Decimal("1000.00")
    before = {r.killmail_id: r.processed_at for r in Involvement.select()}

    changed = pricing.apply_zkb_values(
        db,
        {
            KILL: ZKB,
            11: {**ZKB, "totalValue": 5.0},  # already zKillboard's: left alone
            12: {"totalValue": "42.5", "hash": "x"},
            13: ZKB,  # not stored
            14: {"totalValue": -1},  # unusable
        },
    )

    assert changed == 2
    rows = {r.killmail_id: r for r in Involvement.select()}
    assert rows[KILL].value_source == "zkb" and rows[KILL].total_value == Decimal("987654321.09")
    assert rows[KILL].zkb_data == ZKB and rows[KILL].solo
    assert rows[12].value_source == "zkb" and rows[12].total_value == Decimal("42.50")
    assert rows[11].total_value == Decimal("1000.00")
    assert rows[11].processed_at == before[11]
    assert rows[KILL].processed_at > before[KILL] and rows[12].processed_at > before[12]
    aggregate(db)
    assert daily_isk(db, who) == Decimal("987654321.09") + Decimal("1000.00") + Decimal("42.50")
    assert pricing.apply_zkb_values(db, {KILL: ZKB, 12: ZKB}) == 0


def test_prices_are_fetched_at_most_once_a_day(db, esi_client, fake_server, caplog):
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    first = pricing.refresh_prices(db, esi_client, now=now)
    assert first.fetched and first.types == len(fake_server.market_prices)
    again = pricing.refresh_prices(db, esi_client, now=now + dt.timedelta(hours=23))
    assert not again.fetched and again.fetched_at == now
    assert price_requests(fake_server) == 1
    next_day = now + dt.timedelta(hours=24, minutes=1)
    assert pricing.refresh_prices(db, esi_client, now=next_day).fetched
    assert price_requests(fake_server) == 2

    fake_server.down = True
    caplog.set_level(logging.WARNING, logger=pricing.__name__)
    failed = pricing.refresh_prices(db, esi_client, now=next_day + dt.timedelta(days=2))
    assert not failed.fetched and failed.error and "503" in failed.error
    assert failed.fetched_at == next_day  # the old cache stays in use
    assert MarketPrice.select().count() == len(fake_server.market_prices)
    lines = [r.getMessage() for r in caplog.records if r.name == pricing.__name__]
    assert len(lines) == 1 and "market prices not fetched" in lines[0]
    assert "\n" not in lines[0]


def test_the_cached_prices_are_esis_answer(db, esi_client, fake_server):
    pricing.refresh_prices(db, esi_client)
    served = {e["type_id"]: e.get("average_price") for e in fake_server.market_prices}
    assert None in served.values()  # the fake leaves some averages out, as ESI does
    cached = {r.type_id: r.average_price for r in MarketPrice.select()}
    assert cached == served
    assert pricing.load_prices(db) == {
        t: Decimal(repr(p)) for t, p in served.items() if p is not None
    }


def test_backfill_prices_before_aggregating_and_says_so_last(
    db, real_envelopes, esi_client, fake_server, tmp_path
):
    body = corpus(real_envelopes)
    who = attacker_of(body)
    mails = [
        e for e in real_envelopes if who in {a.get("character_id") for a in e["esi"]["attackers"]}
    ]
    archive = write_archive(tmp_path / "killmails-2016-03-27.tar.bz2", mails)

    summary = backfill_paths(db, [archive], track=[who], market=esi_client)

    assert summary.ok and summary.aggregated
    assert summary.pricing is not None
    seen, priced = summary.pricing.seen, summary.pricing.priced
    assert seen == len(mails) == summary.without_value and priced >= 1
    assert summary.lines()[-1] == (
        f"{seen} mails had no value: {priced} priced from market prices, "
        f"{seen - priced} still unpriced"
    )
    rows = list(Involvement.select().where(Involvement.related_character_id == who))
    estimates = [r.total_value for r in rows if r.value_source == "esi_prices"]
    assert len(estimates) == priced
    assert stored()[0].total_value == hand_priced(body["victim"], fake_server.market_prices)
    # the statistics were aggregated after pricing: they hold the estimates
    total = sum(
        (
            s.isk_destroyed
            for s in KillmailStatistics.select().where(
                (KillmailStatistics.character_id == who)
                & (KillmailStatistics.period_type == "daily")
            )
        ),
        Decimal(0),
    )
    assert total == sum(estimates, Decimal(0))


def test_backfill_command_ends_with_the_pricing_line(
    db, db_url, real_envelopes, fake_server, tmp_path, monkeypatch
):
    body = corpus(real_envelopes)
    archive = write_archive(
        tmp_path / "killmails-2016-03-27.tar.bz2", [{"killmail_id": KILL, "esi": body}]
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESI_BASE_URL", fake_server.url)
    args = ["backfill", str(archive), "--no-progress", f"--track={attacker_of(body)}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "1 mails had no value: 1 priced from market prices, 0 still unpriced"
    )
    assert price_requests(fake_server) == 1
    # ESI enrichment off: the cached prices only, ESI not asked
    monkeypatch.setenv("PERSISTENCE_ESI_ENRICHMENT", "false")
    Involvement.delete().execute()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("1 mails had no value: 1 priced")
    assert price_requests(fake_server) == 1


def test_the_statistics_job_prices_before_aggregating(db, db_url, unpriced, fake_server):
    _, who = unpriced
    off = load_settings(
        overrides={"DATABASE_URL": db_url, "PERSISTENCE_ESI_ENRICHMENT": "false"}, environ={}
    )
    assert pricing.scheduler_step(off) is None
    on = load_settings(
        overrides={"DATABASE_URL": db_url, "ESI_BASE_URL": fake_server.url}, environ={}
    )
    step = pricing.scheduler_step(on)
    assert step is not None
    report = Scheduler(on, db, before_aggregation=[step]).run_now()
    assert report.ok, report.error
    assert stored()[0].value_source == "esi_prices"
    assert daily_isk(db, who) == stored()[0].total_value > 0


def test_the_api_and_stats_show_the_value_source(
    db, db_url, unpriced, esi_client, tmp_path, monkeypatch
):
    from api_support import settings_for
    from falcon import testing

    from wn_persist_plugin.api.app import create_app
    from wn_persist_plugin.api.metrics import make_registry

    _, who = unpriced
    valued = envelope(11, "2016-03-27T13:00:00Z", attackers=[who], value="1000.00")
    missing = envelope(12, "2016-03-27T14:00:00Z", attackers=[who], value=None)
    missing["esi"]["victim"]["ship_type_id"] = 0
    for env in (valued, missing):
        maybe_persist_killmail(env, {who: "Tracked Pilot"})
    pricing.run(db, esi_client)
    aggregate(db)

    api_db = open_database(db_url, bind=False)
    try:
        client = testing.TestClient(create_app(settings_for(db_url), api_db, make_registry(api_db)))
        page = client.simulate_get(f"/api/v1/characters/{who}/killmails")
        assert page.status_code == 200, page.text
        sources = {i["killmail_id"]: i["value_source"] for i in page.json["items"]}
        assert sources == {KILL: "esi_prices", 11: "zkb", 12: "none"}
        detail = client.simulate_get(f"/api/v1/killmails/{KILL}").json
        assert detail["value_source"] == "esi_prices"
        assert Decimal(detail["total_value"]) == stored()[0].total_value
        assert detail["victim"]["items"]  # the attacker row kept them
    finally:
        api_db.close()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    text = CliRunner().invoke(main, ["stats", str(who), "--period", "monthly"])
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[-1] == (
        "values: 1 from zKillboard, 1 estimated from market prices, 1 without a value"
    )
    as_json = CliRunner().invoke(main, ["stats", str(who), "--period", "monthly", "--json"])
    (row,) = json.loads(as_json.output)
    assert row["value_sources"] == {"zkb": 1, "esi_prices": 1, "none": 1}
    assert row["kills_count"] == 3  # the existing keys are still there


def test_migration_marks_existing_values_as_zkillboards(fresh_url):
    db = open_database(fresh_url, bind=False)
    migrator.migrate(db, to=8)
    stamp = "2026-11-01 10:00:00"
    for kid, value in ((1, "1000.00"), (2, None)):
        db.execute_sql(
            "INSERT INTO killmails (killmail_id, kill_time, total_value, character_role,"
            " related_character_id, final_blow, solo, npc, attacker_count, processed_at)"
            f" VALUES ({db.param}, {db.param}, {db.param}, 'attacker', 7, FALSE, FALSE, FALSE,"
            f" 1, {db.param})",
            (kid, stamp, value, stamp),
        )
    migrator.migrate(db)
    got = dict(db.execute_sql("SELECT killmail_id, value_source FROM killmails").fetchall())
    assert got == {1: "zkb", 2: "none"}
    assert "market_prices" in db.get_tables()
    migrator.migrate(db, to=8)
    assert "market_prices" not in db.get_tables()
    columns = {c.name for c in db.get_columns("killmails")}
    assert "value_source" not in columns and "total_value" in columns
    db.close()


def test_fake_prices_follow_esis_contract(fake_server, esi_client):
    prices = esi_client.market_prices()
    assert prices and all(isinstance(t, int) for t in prices)
    assert any(p is None for p in prices.values())
    raw = fake_server.market_prices
    assert all(set(e) <= {"type_id", "average_price", "adjusted_price"} for e in raw)


def test_rows_without_a_value_beside_zkillboards_take_its_value(db, real_envelopes, esi_client):
    body = corpus(real_envelopes)
    victim, who = body["victim"]["character_id"], attacker_of(body)
    with_zkb = {"killmail_id": KILL, "hash": ZKB["hash"], "esi": body, "zkb": ZKB}
    assert maybe_persist_killmail(with_zkb, {victim: "Victim"}).rows == 1
    # later, from an archive (no zkb), for a character tracked since
    maybe_persist_killmail(body, {victim: "Victim", who: "Pilot"})
    assert sorted((r.character_role, r.value_source) for r in stored()) == [
        ("attacker", "none"),
        ("victim", "zkb"),
    ]

    summary = pricing.run(db, esi_client)

    assert (summary.seen, summary.priced, summary.from_zkb) == (0, 0, 1)
    assert {(r.value_source, r.total_value) for r in stored()} == {("zkb", Decimal("987654321.09"))}


def test_attacker_rows_stored_without_the_items_stay_unpriced(db, unpriced, esi_client):
    (row,) = stored()
    data = dict(row.victim_data)
    del data["items"]  # as attacker rows were stored before value_source existed
    Involvement.update(victim_data=data).execute()

    summary = pricing.run(db, esi_client)

    assert (summary.seen, summary.priced, summary.unpriced) == (1, 0, 1)
    assert stored()[0].value_source == "none"
