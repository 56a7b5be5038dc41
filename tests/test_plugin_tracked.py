"""Tracked characters: both entry shapes, the table (tracked_since kept), the id set."""

from __future__ import annotations

import datetime as dt

from wn_persist_plugin.db.models import TrackedCharacter
from wn_persist_plugin.ingest.tracked import load_tracked, normalize, store_tracked

UTC = dt.UTC


def wanderer_entry(eve_id, name, tracked=True, **character):
    return {
        "id": "4712b7b0-0000-0000-0000-000000000000",
        "tracked": tracked,
        "map_id": "678c43cf-0000",
        "character_id": "90ff63d4-1111-2222-3333-444444444444",
        "character": {
            "name": name,
            "eve_id": eve_id,
            "corporation_id": 98801377,
            "corporation_ticker": "SAL.T",
            "alliance_id": None,
            "alliance_ticker": None,
            **character,
        },
    }


def test_both_shapes_ids_as_integers_untracked_skipped():
    result = normalize(
        [
            wanderer_entry("2123019188", "Nimby Karen"),
            wanderer_entry("2123019189", "Gone", tracked=False),
            {"character_id": 95465499, "character_name": "Plain"},
            {"character_id": "95465500"},
            {"character_id": "not-a-number"},
            "garbage",
        ]
    )
    by_id = {e.character_id: e for e in result.entries}
    assert set(by_id) == {2123019188, 95465499, 95465500}
    assert by_id[2123019188].character_name == "Nimby Karen"
    assert by_id[2123019188].corporation_ticker == "SAL.T"
    assert by_id[95465499].character_name == "Plain"
    assert result.untracked == 1
    assert len(result.invalid) == 2


def test_not_a_list_is_invalid_not_raised():
    assert normalize({"character_id": 1}).invalid
    assert normalize(None).invalid


def test_store_keeps_tracked_since_and_untracks_the_missing(db):
    first = dt.datetime(2025, 1, 1, tzinfo=UTC)
    later = dt.datetime(2025, 2, 1, tzinfo=UTC)
    store_tracked(
        db,
        normalize(
            [wanderer_entry("2123019188", "Nimby"), {"character_id": 5, "character_name": "Five"}]
        ).entries,
        now=first,
    )
    store_tracked(
        db,
        normalize(
            [{"character_id": "2123019188"}, {"character_id": 6, "character_name": "Six"}]
        ).entries,
        now=later,
    )
    rows = {r.character_id: r for r in TrackedCharacter.select()}
    assert set(rows) == {2123019188, 5, 6}
    assert rows[2123019188].tracked_since == first
    assert rows[2123019188].updated_at == later
    assert rows[2123019188].character_name == "Nimby"  # kept: the update sent no name
    assert rows[2123019188].corporation_ticker == "SAL.T"
    assert rows[5].tracked is False and rows[5].tracked_since == first
    assert rows[6].tracked is True and rows[6].tracked_since == later
    loaded = load_tracked(db)
    assert loaded.ids == frozenset({2123019188, 6})
    assert loaded.names[6] == "Six"


def test_retracking_keeps_the_first_tracked_since(db):
    first = dt.datetime(2025, 1, 1, tzinfo=UTC)
    store_tracked(db, normalize([{"character_id": 7}]).entries, now=first)
    store_tracked(db, [], now=first + dt.timedelta(days=1))
    assert load_tracked(db).ids == frozenset()
    store_tracked(db, normalize([{"character_id": 7}]).entries, now=first + dt.timedelta(days=2))
    row = TrackedCharacter.get(TrackedCharacter.character_id == 7)
    assert row.tracked is True and row.tracked_since == first


def test_large_list_in_one_call(db):
    entries = normalize([{"character_id": 90_000_000 + i} for i in range(2500)]).entries
    assert store_tracked(db, entries) == 2500
    assert len(load_tracked(db)) == 2500
    store_tracked(db, entries[:10])
    assert len(load_tracked(db)) == 10
    assert TrackedCharacter.select().where(~TrackedCharacter.tracked).count() == 2490
