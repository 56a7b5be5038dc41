"""The synchronous library functions on both databases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from test_killmail import SHAPES, esi_mail

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.library import get_character_killmails, maybe_persist_killmail
from wn_persist_plugin.ingest.tracked import normalize, store_tracked

UTC = dt.UTC


def mail_at(killmail_id: int, when: str, victim: int = 90000001, attacker: int = 90000002):
    esi = esi_mail(killmail_id=killmail_id, killmail_time=when)
    esi["victim"]["character_id"] = victim
    esi["attackers"][0]["character_id"] = attacker
    return {"killmail_id": killmail_id, "esi": esi, "zkb": {"totalValue": 1000 + killmail_id}}


def test_stored_ignored_error_with_tracked_from_the_table(db):
    store_tracked(db, normalize([{"character_id": 90000002, "character_name": "Two"}]).entries)
    result = maybe_persist_killmail(SHAPES["wanderer_kills"]())
    assert (result.status, result.killmail_id, result.rows) == ("stored", 131126432, 1)
    assert result.stored
    row = Involvement.get()
    assert row.related_character_name == "Attacker 0"
    assert row.total_value == Decimal("10123456.78")

    untracked = mail_at(5, "2025-01-01T00:00:00Z", victim=1, attacker=2)
    assert maybe_persist_killmail(untracked).status == "ignored"

    broken = maybe_persist_killmail({"killmail_id": 9, "esi": {"victim": None, "attackers": []}})
    assert broken.status == "error" and broken.killmail_id == 9 and "victim" in broken.reason

    bad_time = mail_at(10, "never", attacker=90000002)
    result = maybe_persist_killmail(bad_time)
    assert result.status == "error" and "kill time" in result.reason
    assert Involvement.select().count() == 1


def test_explicit_tracked_set_and_redelivery_is_idempotent(db):
    envelope = SHAPES["r2z2"]()
    first = maybe_persist_killmail(envelope, tracked={90000001: "Victim", 90000003: None})
    again = maybe_persist_killmail(envelope, tracked=[90000001, 90000003])
    assert (first.status, first.rows, again.status, again.rows) == ("stored", 2, "stored", 2)
    rows = sorted(Involvement.select(), key=lambda r: r.character_role)
    assert [(r.character_role, r.related_character_id) for r in rows] == [
        ("attacker", 90000003),
        ("victim", 90000001),
    ]
    assert rows[1].related_character_name == "Victim"


def test_a_mail_without_zkb_is_stored_without_a_value(db):
    result = maybe_persist_killmail(esi_mail(), tracked=[90000001])
    assert result.status == "stored"
    assert Involvement.get().total_value is None


def test_get_character_killmails_newest_first_with_bounds(db):
    times = ["2025-01-01T10:00:00Z", "2025-01-02T23:59:59Z", "2025-01-03T00:00:00Z"]
    for i, when in enumerate(times, start=1):
        maybe_persist_killmail(mail_at(i, when), tracked=[90000001, 90000002])
    both = get_character_killmails(90000002)
    assert [r.killmail_id for r in both] == [3, 2, 1]
    assert all(r.character_role == "attacker" for r in both)
    days = get_character_killmails("90000001", dt.date(2025, 1, 1), dt.date(2025, 1, 2))
    assert [r.killmail_id for r in days] == [2, 1]
    exact = get_character_killmails(
        90000001,
        dt.datetime(2025, 1, 2, 23, 59, 59, tzinfo=UTC),
        dt.datetime(2025, 1, 3, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    )
    assert [r.killmail_id for r in exact] == [2]  # to is exclusive: 00:00 UTC
    assert [r.killmail_id for r in get_character_killmails(90000001, limit=1)] == [3]
    assert get_character_killmails(12345) == []
    with pytest.raises(ValueError):
        get_character_killmails(90000001, dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        get_character_killmails(90000001, limit=0)


def test_real_corpus_round_trip(db, real_envelopes):
    keepstar = next(e for e in real_envelopes if e["killmail_id"] == 131126432)
    attackers = [a["character_id"] for a in keepstar["esi"]["attackers"] if a.get("character_id")]
    chosen = attackers[:3]
    store_tracked(db, normalize([{"character_id": c} for c in chosen]).entries)
    result = maybe_persist_killmail(keepstar)
    assert result.status == "stored" and result.rows == 3
    for character in chosen:
        (row,) = get_character_killmails(character)
        assert row.killmail_id == 131126432 and row.attacker_count == 3753
        assert row.attacker_data["character_id"] == character


def test_regions_and_names_are_filled_as_on_every_ingest_path(db, real_data_dir):
    from wn_persist_plugin.enrichment import static_data as universe

    universe.import_directory(db, real_data_dir / "universe")
    mail = mail_at(11, "2025-01-01T00:00:00Z")
    assert maybe_persist_killmail(mail, tracked=[90000002]).stored
    row = Involvement.get()
    assert row.solar_system_id == mail["esi"]["solar_system_id"]
    assert row.region_id is not None and row.region_name and row.solar_system_name
