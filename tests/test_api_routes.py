"""The HTTP API's routes over the real corpus, on both databases (in-process client)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from decimal import Decimal

from api_support import (
    esi_of,
    participants,
    seeded_database,  # noqa: F401 - the `seeded` fixture
    value_of,
)

ISK = re.compile(r"^-?\d+\.\d\d$")
ZULU = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def busiest(s) -> int:
    counts: Counter[int] = Counter()
    for env in s.envelopes:
        victim, attackers = participants(env)
        for cid in (attackers | ({victim} if victim else set())) & s.tracked:
            counts[cid] += 1
    return counts.most_common(1)[0][0]


def test_livez_readyz_openapi(seeded):
    assert seeded.client.simulate_get("/livez").json == {"status": "ok"}
    ready = seeded.client.simulate_get("/readyz")
    assert ready.status_code == 200
    checks = ready.json["checks"]
    assert checks["database"]["ok"] and checks["schema"]["ok"]
    assert checks["aggregation"]["monthly"]["last_run_at"].endswith("Z")
    doc = seeded.client.simulate_get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    for path in (
        "/livez", "/readyz", "/metrics", "/openapi.json", "/api/v1/characters",
        "/api/v1/characters/{character_id}", "/api/v1/characters/{character_id}/stats",
        "/api/v1/characters/{character_id}/killmails",
        "/api/v1/characters/{character_id}/activity", "/api/v1/killmails/{killmail_id}",
        "/api/v1/leaderboard", "/api/v1/group/stats", "/api/v1/export",
    ):  # fmt: skip
        assert path in doc["paths"], path
    stats = doc["paths"]["/api/v1/characters/{character_id}/stats"]["get"]
    names = {p["name"] for p in stats["parameters"]}
    assert {"character_id", "period", "from", "to"} <= names


def test_characters_and_profile(seeded):
    items = seeded.client.simulate_get("/api/v1/characters").json["items"]
    assert {c["id"] for c in items} == seeded.tracked
    cid = busiest(seeded)
    one = next(c for c in items if c["id"] == cid)
    assert one["name"] == f"Pilot {cid}" and one["corporation"]["ticker"] == "TEST"
    assert ZULU.match(one["first_involvement"]) and ZULU.match(one["last_involvement"])
    profile = seeded.client.simulate_get(f"/api/v1/characters/{cid}").json
    totals = profile["totals"]
    kills = sum(1 for e in seeded.envelopes if cid in participants(e)[1])
    deaths = sum(1 for e in seeded.envelopes if participants(e)[0] == cid)
    assert (totals["kills"], totals["deaths"]) == (kills, deaths)
    assert one["kills"] == kills and one["deaths"] == deaths
    destroyed = sum(value_of(e) for e in seeded.envelopes if cid in participants(e)[1])
    assert Decimal(totals["isk_destroyed"]) == destroyed and ISK.match(totals["isk_destroyed"])
    for key in ("efficiency", "danger_ratio", "gang_ratio", "average_attackers"):
        assert key in totals


def test_stats_periods_and_etag(seeded):
    cid = busiest(seeded)
    url = f"/api/v1/characters/{cid}/stats"
    resp = seeded.client.simulate_get(url, params={"period": "monthly"})
    assert resp.status_code == 200
    items = resp.json["items"]
    assert items and sum(i["kills"] for i in items) == sum(
        1 for e in seeded.envelopes if cid in participants(e)[1]
    )
    for item in items:
        assert ISK.match(item["isk_destroyed"]) and ISK.match(item["isk_lost"])
        assert item["period_start"] <= item["period_end"]
        assert isinstance(item["top_ships"], list) and isinstance(item["top_regions"], list)
    first = items[0]["period_start"]
    narrowed = seeded.client.simulate_get(
        url, params={"period": "daily", "from": first, "to": first}
    ).json["items"]
    assert all(i["period_start"] == first for i in narrowed)
    tag = resp.headers["etag"]
    again = seeded.client.simulate_get(
        url, params={"period": "monthly"}, headers={"If-None-Match": tag}
    )
    assert again.status_code == 304 and not again.text
    other = seeded.client.simulate_get(
        url, params={"period": "weekly"}, headers={"If-None-Match": tag}
    )
    assert other.status_code == 200


def test_activity_grid(seeded):
    cid = busiest(seeded)
    grid = seeded.client.simulate_get(f"/api/v1/characters/{cid}/activity").json["counts"]
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)
    involved = sum(participants(e)[0] == cid for e in seeded.envelopes) + sum(
        cid in participants(e)[1] for e in seeded.envelopes
    )
    assert sum(map(sum, grid)) == involved


def test_killmail_detail(seeded):
    env = next(
        e for e in seeded.envelopes
        if e.get("zkb") and len(participants(e)[1] & seeded.tracked) >= 2
    )  # fmt: skip
    kid = env["killmail_id"]
    mail = seeded.client.simulate_get(f"/api/v1/killmails/{kid}").json
    assert mail["killmail_id"] == kid and mail["zkillboard_url"].endswith(f"/kill/{kid}/")
    assert Decimal(mail["total_value"]) == value_of(env) and ISK.match(mail["total_value"])
    credited = {(t["character_id"], t["role"]) for t in mail["tracked"]}
    victim, attackers = participants(env)
    expected = {(a, "attacker") for a in attackers & seeded.tracked}
    if victim in seeded.tracked:
        expected.add((victim, "victim"))
    assert credited == expected
    assert mail["victim"]["ship_type_id"] == esi_of(env)["victim"]["ship_type_id"]
    assert mail["zkb"]["hash"] == env["zkb"]["hash"]


def test_killmail_items_say_where_their_value_came_from(seeded):
    cid = busiest(seeded)
    items = seeded.client.simulate_get(
        f"/api/v1/characters/{cid}/killmails", params={"limit": "500"}
    ).json["items"]
    by_id = {e["killmail_id"]: e for e in seeded.envelopes}
    sources = {i["value_source"] for i in items}
    assert sources <= {"zkb", "none"}  # nothing priced from market prices here
    for item in items:
        has_value = (by_id[item["killmail_id"]].get("zkb") or {}).get("totalValue") is not None
        assert item["value_source"] == ("zkb" if has_value else "none")
        assert (item["total_value"] is not None) == has_value


def test_leaderboard(seeded):
    months = seeded.client.simulate_get(f"/api/v1/characters/{busiest(seeded)}/stats").json
    start = months["items"][-1]["period_start"]
    resp = seeded.client.simulate_get(
        "/api/v1/leaderboard", params={"start": start, "by": "isk_destroyed", "limit": "5"}
    )
    board = resp.json
    assert board["period_start"] == start and 0 < len(board["items"]) <= 5
    values = [Decimal(i["isk_destroyed"]) for i in board["items"]]
    assert values == sorted(values, reverse=True)
    assert [i["rank"] for i in board["items"]] == list(range(1, len(values) + 1))
    cached = seeded.client.simulate_get(
        "/api/v1/leaderboard",
        params={"start": start, "by": "isk_destroyed", "limit": "5"},
        headers={"If-None-Match": resp.headers["etag"]},
    )
    assert cached.status_code == 304
    for by in ("kills", "deaths", "isk_lost", "solo_kills", "final_blows", "efficiency"):
        ranked = seeded.client.simulate_get(
            "/api/v1/leaderboard", params={"start": start, "by": by}
        )
        assert ranked.status_code == 200, by


def test_group_stats_count_each_mail_once(seeded):
    """Hand-computed from the raw mails: a mail with any tracked attacker is one kill with
    its value once; a tracked victim makes it one loss too."""
    kills = losses = solo = 0
    destroyed = lost = Decimal("0.00")
    for env in seeded.envelopes:
        victim, attackers = participants(env)
        if attackers & seeded.tracked:
            kills += 1
            destroyed += value_of(env)
            solo += bool((env.get("zkb") or {}).get("solo"))
        if victim in seeded.tracked:
            losses += 1
            lost += value_of(env)
    resp = seeded.client.simulate_get("/api/v1/group/stats", params={"period": "monthly"})
    body = resp.json
    totals = body["totals"]
    assert (totals["kills"], totals["deaths"], totals["solo_kills"]) == (kills, losses, solo)
    assert Decimal(totals["isk_destroyed"]) == destroyed and Decimal(totals["isk_lost"]) == lost
    assert ISK.match(totals["isk_destroyed"])
    assert sum(i["kills"] for i in body["items"]) == kills
    assert sum(Decimal(i["isk_lost"]) for i in body["items"]) == lost
    both = sum(
        1 for e in seeded.envelopes
        if participants(e)[0] in seeded.tracked and participants(e)[1] & seeded.tracked
    )  # fmt: skip
    fleets = sum(1 for e in seeded.envelopes if len(participants(e)[1] & seeded.tracked) > 1)
    assert both > 0 and fleets > 0  # the corpus exercises both rules
    tag = resp.headers["etag"]
    assert (
        seeded.client.simulate_get(
            "/api/v1/group/stats", params={"period": "monthly"}, headers={"If-None-Match": tag}
        ).status_code
        == 304
    )


def test_export_formats(seeded):
    count = seeded.db.execute_sql("SELECT COUNT(*) FROM killmails").fetchone()[0]
    nd = seeded.client.simulate_get("/api/v1/export", params={"format": "ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in nd.text.splitlines()]
    assert len(rows) == count
    assert len({(r["killmail_id"], r["character_id"], r["role"]) for r in rows}) == count
    assert all(r["total_value"] is None or ISK.match(r["total_value"]) for r in rows)
    as_json = seeded.client.simulate_get("/api/v1/export", params={"format": "json"}).json
    assert len(as_json) == count
    text = seeded.client.simulate_get("/api/v1/export", params={"format": "csv"}).text
    assert len(list(csv.DictReader(io.StringIO(text)))) == count
    cid = rows[0]["character_id"]
    mine = seeded.client.simulate_get("/api/v1/export", params={"character": str(cid)}).text
    assert {json.loads(x)["character_id"] for x in mine.splitlines()} == {cid}
