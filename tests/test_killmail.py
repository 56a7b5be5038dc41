"""Killmail parsing: every envelope shape, the cheap filter, malformed input."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

import pytest

from wn_persist_plugin.ingest.match import involves, match
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as km

UTC = dt.UTC


def esi_mail(**over):
    mail = {
        "killmail_id": 131126432,
        "killmail_time": "2025-11-02T18:40:11Z",
        "solar_system_id": 30004759,
        "victim": {
            "character_id": 90000001,
            "corporation_id": 98000001,
            "ship_type_id": 587,
            "damage_taken": 1200,
            "items": [{"item_type_id": 2, "flag": 5, "singleton": 0, "quantity_dropped": 1}],
        },
        "attackers": [
            {
                "character_id": 90000002,
                "ship_type_id": 11202,
                "damage_done": 700,
                "final_blow": True,
            },
            {"character_id": 90000003, "ship_type_id": 24690, "damage_done": 500},
            {"ship_type_id": 34495, "faction_id": 500024, "damage_done": 0},
        ],
    }
    mail.update(over)
    return mail


ZKB = {
    "locationID": 40000001,
    "hash": "abc",
    "totalValue": 10123456.78,
    "solo": False,
    "npc": False,
}


def wanderer_kills(esi=None):
    esi = esi or esi_mail()
    victim = dict(esi["victim"], character_name="Victim Name", ship_name="Rifter")
    victim.pop("items")
    attackers = [dict(a, character_name=f"Attacker {i}") for i, a in enumerate(esi["attackers"])]
    return {
        "killmail_id": esi["killmail_id"],
        "kill_time": esi["killmail_time"],
        "system_id": esi["solar_system_id"],
        "victim": victim,
        "attackers": attackers,
        "zkb": dict(ZKB),
        "attacker_count": len(attackers),
    }


def notifier_struct(esi=None):
    esi = copy.deepcopy(esi or esi_mail())
    esi["solar_system_name"] = "Jita"
    esi["victim"]["character_name"] = "Victim Name"
    esi["victim"]["ship_type_name"] = "Rifter"
    for attacker in esi["attackers"]:
        attacker["ship_type_name"] = "Ship"
    return {"killmail_id": esi["killmail_id"], "zkb": dict(ZKB), "esi_data": esi}


SHAPES = {
    "r2z2": lambda: {"killmail_id": 131126432, "hash": "abc", "esi": esi_mail(), "zkb": ZKB},
    "redisq_package": lambda: {
        "package": {"killID": 131126432, "killmail": esi_mail(), "zkb": ZKB}
    },
    "redisq_bare": lambda: {"killID": 131126432, "killmail": esi_mail(), "zkb": ZKB},
    "esi_zkb_merged": lambda: dict(esi_mail(), zkb=ZKB),
    "wanderer_kills": wanderer_kills,
    "notifier_struct": notifier_struct,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_envelope_shape_parses_to_the_same_mail(shape):
    mail = km.parse(SHAPES[shape]())
    assert mail.killmail_id == 131126432
    assert mail.kill_time == dt.datetime(2025, 11, 2, 18, 40, 11, tzinfo=UTC)
    assert mail.solar_system_id == 30004759
    assert mail.victim.character_id == 90000001
    assert [a.character_id for a in mail.attackers] == [90000002, 90000003, None]
    assert mail.total_value == Decimal("10123456.78")
    assert mail.zkb_warning is None


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cheap_filter_agrees_on_every_shape(shape):
    envelope = SHAPES[shape]()
    assert involves(envelope, {90000003})
    assert involves(envelope, {90000001})
    assert not involves(envelope, {1, 2, 3})
    assert km.killmail_id_of(envelope) == 131126432
    matched = match(envelope, TrackedSet.of_ids([90000003]))
    assert matched is not None and matched.killmail_id == 131126432
    assert match(envelope, TrackedSet.of_ids([1, 2, 3])) is None


def test_names_are_used_when_present():
    mail = km.parse(wanderer_kills())
    assert mail.victim.character_name == "Victim Name"
    assert mail.victim.ship_type_name == "Rifter"
    assert mail.attackers[1].character_name == "Attacker 1"
    struct = km.parse(notifier_struct())
    assert struct.solar_system_name == "Jita"
    assert struct.victim.ship_type_name == "Rifter"


def test_string_ids_compare_as_integers():
    esi = esi_mail()
    esi["victim"]["character_id"] = "90000001"
    esi["attackers"][0]["character_id"] = " 90000002 "
    assert involves(esi, frozenset({90000002}))
    assert involves(esi, frozenset({90000001}))
    mail = km.parse(esi)
    assert mail.victim.character_id == 90000001
    assert mail.attackers[0].character_id == 90000002


def test_no_zkb_is_not_malformed_and_a_bad_zkb_warns():
    plain = km.parse(esi_mail())
    assert plain.zkb is None and plain.total_value is None and plain.zkb_warning is None
    odd = km.parse(dict(esi_mail(), zkb="oops"))
    assert odd.total_value is None and "not a mapping" in odd.zkb_warning
    odd_value = km.parse(dict(esi_mail(), zkb={"totalValue": "lots"}))
    assert odd_value.total_value is None and odd_value.zkb_warning


def test_old_time_format_and_offsets():
    assert km.parse(esi_mail(killmail_time="2008.01.06 00:44:00")).kill_time == dt.datetime(
        2008, 1, 6, 0, 44, tzinfo=UTC
    )
    assert km.parse(esi_mail(killmail_time="2025-11-02T20:40:11+02:00")).kill_time == (
        dt.datetime(2025, 11, 2, 18, 40, 11, tzinfo=UTC)
    )


def _without(key):
    mail = esi_mail()
    del mail[key]
    return mail


MALFORMED = {
    "not a mapping": ([1, 2], None),
    "no victim": (_without("victim"), 131126432),
    "attackers not a list": (esi_mail(attackers={"a": 1}), 131126432),
    "garbage victim id": (
        esi_mail(victim={"character_id": "abc", "ship_type_id": 1, "damage_taken": 1}),
        131126432,
    ),
    "garbage attacker id": (
        esi_mail(attackers=[{"character_id": "x1", "damage_done": 1}]),
        131126432,
    ),
    "attacker not a mapping": (esi_mail(attackers=["nope"]), 131126432),
    "esi part not a mapping": ({"killmail_id": 5, "esi": "text"}, 5),
    "esi_data not a mapping": ({"killmail_id": 6, "esi_data": None, "zkb": {}}, 6),
    "empty redisq package": ({"package": None}, None),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_structure_raises_with_the_id(case):
    envelope, killmail_id = MALFORMED[case]
    with pytest.raises(km.MalformedKillmail) as err:
        involves(envelope, frozenset({1}))
    assert err.value.killmail_id == killmail_id
    with pytest.raises(km.MalformedKillmail):
        match(envelope, TrackedSet.of_ids([1]))
    with pytest.raises(km.MalformedKillmail):
        km.parse(envelope)


def test_parse_refuses_unparsable_time_and_missing_id():
    with pytest.raises(km.MalformedKillmail, match="kill time") as err:
        km.parse(esi_mail(killmail_time="yesterday"))
    assert err.value.killmail_id == 131126432
    with pytest.raises(km.MalformedKillmail, match="killmail id"):
        km.parse(esi_mail(killmail_id="nope"))


def test_real_corpus_parses_and_filter_matches_parse(real_envelopes):
    for envelope in real_envelopes:
        mail = km.parse(envelope)
        ids = {p.character_id for p in (mail.victim, *mail.attackers) if p.character_id}
        some = set(list(ids)[:1])
        assert involves(envelope, some) == bool(some)
        assert not involves(envelope, {1})
        assert mail.total_value is None or envelope["zkb"] is not None


def test_raw_files_in_their_original_shapes(real_data_dir):
    raw = real_data_dir / "killmails" / "raw"
    package = json.loads((raw / "killmail-router" / "payload1.json").read_text())
    assert km.parse(package).killmail_id == 119455394
    bare = json.loads((raw / "zk-activity" / "119689329_nid_solo.json").read_text())
    assert km.parse(bare).killmail_id == 119689329
    merged = json.loads((raw / "elit-zkb-2017" / "kellyl_losses.json").read_text())
    assert all(km.parse(m).total_value is not None for m in merged)
    plain = json.loads((raw / "evekill-shrike" / "corpus" / "435341.json").read_text())
    assert km.parse(plain).total_value is None
    keepstar = json.loads((raw / "zk-activity" / "131126432_keepstar_kill.json").read_text())
    mail = km.parse(keepstar)
    assert len(mail.attackers) == 3753
    assert mail.victim.character_id is None
