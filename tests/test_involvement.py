"""From a parsed killmail to involvement rows, on real mails."""

from __future__ import annotations

import json
from decimal import Decimal

from wn_persist_plugin.ingest.rows import involvement_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as km


def by_id(envelopes, killmail_id):
    return next(e for e in envelopes if e["killmail_id"] == killmail_id)


def player_attackers(envelope):
    return [a for a in envelope["esi"]["attackers"] if a.get("character_id")]


def test_fleet_kill_with_many_tracked_attackers(real_envelopes):
    envelope = max(
        (e for e in real_envelopes if e["esi"]["victim"].get("character_id")),
        key=lambda e: len(player_attackers(e)),
    )
    attackers = player_attackers(envelope)
    tracked = {a["character_id"] for a in attackers[:25]}
    mail = km.parse(envelope)
    rows = involvement_rows(mail, TrackedSet.of_ids(tracked))
    assert {r.related_character_id for r in rows} == tracked
    assert {r.character_role for r in rows} == {"attacker"}
    for row in rows:
        own = row.attacker_data
        assert own["character_id"] == row.related_character_id
        assert row.ship_type_id == own.get("ship_type_id")
        assert row.attacker_count == len(envelope["esi"]["attackers"])
        # the victim's items are kept only for a mail without a value (to price it later)
        assert ("items" in row.victim_data) == (mail.total_value is None)


def test_tracked_characters_on_both_sides(real_envelopes):
    envelope = next(
        e for e in real_envelopes if e["esi"]["victim"].get("character_id") and player_attackers(e)
    )
    victim_id = envelope["esi"]["victim"]["character_id"]
    killer = player_attackers(envelope)[0]
    rows = involvement_rows(
        km.parse(envelope), TrackedSet.of_ids({victim_id, killer["character_id"]})
    )
    assert sorted((r.character_role, r.related_character_id) for r in rows) == sorted(
        [("victim", victim_id), ("attacker", killer["character_id"])]
    )
    victim_row = next(r for r in rows if r.character_role == "victim")
    assert victim_row.ship_type_id == envelope["esi"]["victim"]["ship_type_id"]
    assert victim_row.attacker_data is None
    assert victim_row.victim_data.get("items") == envelope["esi"]["victim"].get("items")
    assert not victim_row.final_blow


def test_structure_victim_without_character(real_envelopes):
    envelope = next(e for e in real_envelopes if not e["esi"]["victim"].get("character_id"))
    tracked = {a["character_id"] for a in player_attackers(envelope)}
    rows = involvement_rows(km.parse(envelope), TrackedSet.of_ids(tracked))
    assert rows and all(r.character_role == "attacker" for r in rows)


def test_npc_attackers_are_not_rows_and_npc_kill_flag(real_envelopes):
    npc_only = [e for e in real_envelopes if not player_attackers(e)]
    assert npc_only
    envelope = npc_only[0]
    victim_id = envelope["esi"]["victim"].get("character_id")
    rows = involvement_rows(km.parse(envelope), TrackedSet.of_ids([victim_id] if victim_id else []))
    if victim_id:
        assert len(rows) == 1 and rows[0].npc is True
    mixed = next(
        e
        for e in real_envelopes
        if player_attackers(e) and len(player_attackers(e)) < len(e["esi"]["attackers"])
    )
    players = TrackedSet.of_ids(a["character_id"] for a in player_attackers(mixed))
    rows = involvement_rows(km.parse(mixed), players)
    assert all(not r.npc for r in rows)
    assert len(rows) == len({a["character_id"] for a in player_attackers(mixed)})


def test_keepstar_with_3753_attackers_stays_small(real_envelopes):
    envelope = by_id(real_envelopes, 131126432)
    attackers = player_attackers(envelope)
    assert len(envelope["esi"]["attackers"]) == 3753
    tracked = {a["character_id"] for a in attackers[::40]}
    rows = involvement_rows(km.parse(envelope), TrackedSet.of_ids(tracked))
    assert len(rows) == len(tracked)
    for row in rows:
        # Only this attacker's own entry, never the whole attacker list.
        assert len(json.dumps(row.attacker_data)) < 1000
        assert len(json.dumps(row.victim_data)) < 2000
        assert row.attacker_count == 3753


def test_character_listed_twice_on_a_mail_is_one_row_with_its_final_blow():
    esi = {
        "killmail_id": 7,
        "killmail_time": "2025-01-01T00:00:00Z",
        "solar_system_id": 30000142,
        "victim": {"character_id": 1, "ship_type_id": 587, "damage_taken": 10},
        "attackers": [
            {"character_id": 2, "ship_type_id": 100, "damage_done": 4, "final_blow": False},
            {"character_id": 2, "ship_type_id": 200, "damage_done": 6, "final_blow": True},
        ],
        "zkb": {"totalValue": 1000.5, "solo": True},
    }
    rows = involvement_rows(km.parse(esi), TrackedSet.of_ids({2: "Two"}))
    assert len(rows) == 1
    row = rows[0]
    assert (row.final_blow, row.ship_type_id, row.related_character_name) == (
        True,
        200,
        "Two",
    )
    assert row.total_value == Decimal("1000.50") and row.solo is True


def test_inline_names_win_over_tracked_names():
    mail = {
        "killmail_id": 8,
        "kill_time": "2025-01-01T00:00:00Z",
        "system_id": 30000142,
        "victim": {"character_id": 1, "character_name": "Inline", "ship_type_id": 587},
        "attackers": [{"character_id": 2, "damage_done": 1, "final_blow": True}],
    }
    rows = involvement_rows(km.parse(mail), TrackedSet.of_ids({1: "Stored", 2: "Stored Two"}))
    names = {r.related_character_id: r.related_character_name for r in rows}
    assert names == {1: "Inline", 2: "Stored Two"}
    assert all(r.total_value is None and r.zkb_data is None for r in rows)
