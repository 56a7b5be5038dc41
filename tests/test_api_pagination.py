"""Keyset pages: a walk returns every involvement exactly once, also while mails are
being inserted; the Link header points at the next page (both databases)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlsplit

from api_support import participants, persist, settings_for, track, tracked_of
from falcon import testing
from prometheus_client import CollectorRegistry

from wn_persist_plugin.api.app import create_app
from wn_persist_plugin.db.connect import open_database


def _busiest(envelopes, tracked) -> int:
    counts: Counter[int] = Counter()
    for env in envelopes:
        victim, attackers = participants(env)
        for cid in (attackers | ({victim} if victim else set())) & tracked:
            counts[cid] += 1
    return counts.most_common(1)[0][0]


def _involvements(envelopes, cid) -> set[tuple[int, str]]:
    out = set()
    for env in envelopes:
        victim, attackers = participants(env)
        if victim == cid:
            out.add((env["killmail_id"], "victim"))
        if cid in attackers:
            out.add((env["killmail_id"], "attacker"))
    return out


def _walk(client, cid, limit, between_pages=None):
    seen, pages, url, params = [], 0, f"/api/v1/characters/{cid}/killmails", {"limit": limit}
    while True:
        resp = client.simulate_get(url, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json
        seen += [(i["killmail_id"], i["role"]) for i in body["items"]]
        times = [(i["kill_time"], i["killmail_id"]) for i in body["items"]]
        assert times == sorted(times, reverse=True)
        pages += 1
        if body["next"] is None:
            assert "link" not in resp.headers
            return seen, pages
        link = resp.headers["link"]
        assert 'rel="next"' in link
        query = parse_qs(urlsplit(link[link.index("<") + 1 : link.index(">")]).query)
        assert query["cursor"] == [body["next"]] and query["limit"] == [str(limit)]
        params = {"limit": limit, "cursor": body["next"]}
        if between_pages:
            between_pages(pages)


def test_walk_returns_every_involvement_once_while_inserting(db, db_url, real_envelopes):
    tracked = tracked_of(real_envelopes)
    track(tracked)
    ordered = sorted(real_envelopes, key=lambda e: e["killmail_id"])
    first, rest = ordered[::2], ordered[1::2]
    persist(first, tracked)
    cid = _busiest(real_envelopes, tracked)
    api_db = open_database(db_url, bind=False)
    client = testing.TestClient(create_app(settings_for(db_url), api_db, CollectorRegistry()))

    expected = _involvements(first, cid)
    quiet, pages = _walk(client, cid, 3)
    assert len(quiet) == len(set(quiet)) == len(expected) and set(quiet) == expected
    assert pages > 3

    chunks = [rest[i::pages] for i in range(pages)]

    def insert(page: int) -> None:
        if page <= len(chunks):
            persist(chunks[page - 1], tracked)

    busy, _ = _walk(client, cid, 3, between_pages=insert)
    assert len(busy) > len(quiet), "the inserts reached the pages still to come"
    assert len(busy) == len(set(busy)), "an involvement came twice"
    assert expected <= set(busy), "an involvement present from the start was skipped"
    assert set(busy) <= _involvements(ordered, cid)
    api_db.close()


def test_role_filter_and_date_range(db, db_url, real_envelopes):
    tracked = tracked_of(real_envelopes)
    track(tracked)
    persist(real_envelopes, tracked)
    cid = _busiest(real_envelopes, tracked)
    api_db = open_database(db_url, bind=False)
    client = testing.TestClient(create_app(settings_for(db_url), api_db, CollectorRegistry()))
    url = f"/api/v1/characters/{cid}/killmails"
    victims = client.simulate_get(url, params={"role": "victim", "limit": 500}).json["items"]
    assert {(i["killmail_id"], "victim") for i in victims} == {
        x for x in _involvements(real_envelopes, cid) if x[1] == "victim"
    }
    everything = client.simulate_get(url, params={"limit": 500}).json["items"]
    day = everything[len(everything) // 2]["kill_time"][:10]
    one_day = client.simulate_get(url, params={"from": day, "to": day, "limit": 500}).json
    assert one_day["items"] and all(i["kill_time"].startswith(day) for i in one_day["items"])
    item = everything[0]
    assert set(item) >= {
        "killmail_id", "kill_time", "role", "final_blow", "solo", "npc", "system", "region",
        "ship", "total_value", "attacker_count", "zkillboard_url",
    }  # fmt: skip
    api_db.close()
