"""Aggregation on both databases: equal to the independent reference over the real corpus,
incremental runs, rebuilds, period boundaries, exact ISK, deletions, frozen periods."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest
from reference_stats import (
    database_statistics,
    envelope,
    reference_statistics,
    store_envelopes,
)

from wn_persist_plugin.db.models import (
    Involvement,
    KillmailStatistics,
    StatisticsRetention,
    TrackedCharacter,
)
from wn_persist_plugin.statistics import aggregation
from wn_persist_plugin.statistics.aggregation import aggregate, period_bounds

UTC = dt.UTC
PAST = dt.datetime.now(UTC) - dt.timedelta(days=1)
"""`processed_at` for rows written "before" a run (older than the overlap)."""


def stats_of(character_id: int, period_type: str) -> dict[dt.date, KillmailStatistics]:
    return {
        s.period_start: s
        for s in KillmailStatistics.select().where(
            (KillmailStatistics.character_id == character_id)
            & (KillmailStatistics.period_type == period_type)
        )
    }


def assert_matches(expected: dict, got: dict) -> None:
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    for key, row in expected.items():
        assert got[key] == row, key


# --- the real corpus against the reference --------------------------------------------


def _participants(envelopes) -> set[int]:
    ids = set()
    for env in envelopes:
        esi = env["esi"]
        if esi["victim"].get("character_id"):
            ids.add(int(esi["victim"]["character_id"]))
        ids.update(int(a["character_id"]) for a in esi["attackers"] if a.get("character_id"))
    return ids


@pytest.fixture(scope="module")
def corpus_setup(real_envelopes, real_data_dir):
    everyone = _participants(real_envelopes)
    # a deterministic third of everyone, so fleet kills, both sides and solo pilots occur
    tracked = {cid for cid in everyone if cid % 3 != 1}
    tracked_names = {cid: f"Pilot {cid}" for cid in tracked if cid % 2 == 0}
    system_region: dict[int, int] = {}
    with (real_data_dir / "universe" / "mapSolarSystems.csv").open() as fh:
        for row in csv.DictReader(fh):
            system_region[int(row["solarSystemID"])] = int(row["regionID"])
    return tracked, tracked_names, system_region


def row_names(cid: int) -> str | None:
    return f"Row {cid}" if cid % 5 == 0 else None


def _track(tracked_names: dict[int, str]) -> None:
    now = dt.datetime.now(UTC)
    TrackedCharacter.insert_many(
        [
            {"character_id": cid, "character_name": name, "tracked_since": now, "updated_at": now}
            for cid, name in tracked_names.items()
        ]
    ).execute()


def _fill_regions(system_region: dict[int, int], systems: list[int]) -> None:
    """What enrichment does: region ids for some systems, with a new processed_at."""
    now = dt.datetime.now(UTC)
    by_region: dict[int, list[int]] = {}
    for system in systems:
        by_region.setdefault(system_region[system], []).append(system)
    for region, members in by_region.items():
        Involvement.update(region_id=region, processed_at=now).where(
            Involvement.solar_system_id.in_(members)
        ).execute()


def test_real_corpus_equals_reference(db, real_envelopes, corpus_setup):
    tracked, tracked_names, system_region = corpus_setup
    _track(tracked_names)
    store_envelopes(db, real_envelopes, tracked, processed_at=PAST, name_of=row_names)
    known = sorted({e["esi"]["solar_system_id"] for e in real_envelopes} & set(system_region))
    filled = set(known[::2])
    _fill_regions(system_region, sorted(filled))

    result = aggregate(db)
    assert [p.mode for p in result.periods] == ["rebuild"] * 3

    expected = reference_statistics(
        real_envelopes,
        tracked,
        tracked_names=tracked_names,
        row_names=row_names,
        region_of=lambda s: system_region.get(s) if s in filled else None,
    )
    assert len(expected) > 3000
    assert any(r["region_activity"].get("unknown") for r in expected.values())
    assert any(len(r["region_activity"]) > 1 for r in expected.values())
    assert any(r["isk_destroyed"] > 10**11 for r in expected.values())  # the Keepstar
    assert_matches(expected, database_statistics(KillmailStatistics))

    # recomputing changes nothing
    again = aggregate(db, rebuild=True)
    assert again.rows_written == 0 and again.rows_deleted == 0
    assert_matches(expected, database_statistics(KillmailStatistics))


def test_incremental_in_two_halves_equals_reference(db, real_envelopes, corpus_setup):
    tracked, tracked_names, system_region = corpus_setup
    first, second = real_envelopes[::2], real_envelopes[1::2]
    store_envelopes(db, first, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    # the second half arrives and regions are found for every system, then one run
    store_envelopes(db, second, tracked)
    _fill_regions(
        system_region,
        sorted({e["esi"]["solar_system_id"] for e in real_envelopes} & set(system_region)),
    )
    result = aggregate(db)
    assert [p.mode for p in result.periods] == ["incremental"] * 3
    expected = reference_statistics(real_envelopes, tracked, region_of=system_region.get)
    assert_matches(expected, database_statistics(KillmailStatistics))

    # a rebuild computes the very same rows (maps included) in its own way
    again = aggregate(db, rebuild=True)
    assert again.rows_written == 0 and again.rows_deleted == 0


# --- incremental behaviour ------------------------------------------------------------


def test_incremental_touches_only_changed_periods(db):
    tracked = {1, 2, 3}
    store_envelopes(
        db,
        [
            envelope(10, "2025-03-03T10:00:00Z", victim=1, attackers=[2]),
            envelope(11, "2025-03-20T10:00:00Z", victim=3, attackers=[2]),
        ],
        tracked,
        processed_at=PAST,
    )
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    before = {
        (s.period_type, s.period_start, s.character_id): s.updated_at
        for s in KillmailStatistics.select()
    }

    store_envelopes(db, [envelope(12, "2025-03-21T10:00:00Z", victim=9, attackers=[3])], tracked)
    result = aggregate(db)
    examined = {p.period_type: p.periods_examined for p in result.periods}
    # only character 3 had a change: one day, one week, one month
    assert examined == {"daily": 1, "weekly": 1, "monthly": 1}
    after = {
        (s.period_type, s.period_start, s.character_id): s for s in KillmailStatistics.select()
    }
    for key, updated in before.items():
        if key[2] != 3:
            assert after[key].updated_at == updated, key
    assert after[("monthly", dt.date(2025, 3, 1), 3)].kills_count == 1
    assert after[("monthly", dt.date(2025, 3, 1), 3)].deaths_count == 1

    # nothing new: nothing examined (outside the overlap)
    later = dt.datetime.now(UTC) + dt.timedelta(hours=3)
    quiet = aggregate(db, now=later)
    quiet = aggregate(db, now=later + dt.timedelta(hours=2))
    assert [p.mode for p in quiet.periods] == ["unchanged"] * 3


def test_value_filled_later_is_picked_up(db):
    tracked = {1}
    store_envelopes(
        db,
        [envelope(20, "2025-06-01T12:00:00Z", attackers=[1], value=None)],
        tracked,
        processed_at=PAST,
    )
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    assert stats_of(1, "daily")[dt.date(2025, 6, 1)].isk_destroyed == Decimal("0.00")
    assert stats_of(1, "daily")[dt.date(2025, 6, 1)].kills_count == 1
    store_envelopes(
        db, [envelope(20, "2025-06-01T12:00:00Z", attackers=[1], value="5.25")], tracked
    )
    aggregate(db)
    assert stats_of(1, "daily")[dt.date(2025, 6, 1)].isk_destroyed == Decimal("5.25")
    assert stats_of(1, "monthly")[dt.date(2025, 6, 1)].isk_destroyed == Decimal("5.25")


def test_deleted_involvements_are_recomputed_and_empty_periods_removed(db):
    tracked = {1}
    store_envelopes(
        db,
        [
            envelope(30, "2025-06-02T12:00:00Z", attackers=[1]),
            envelope(31, "2025-06-03T12:00:00Z", attackers=[1]),
        ],
        tracked,
        processed_at=PAST,
    )
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    assert stats_of(1, "weekly")[dt.date(2025, 6, 2)].kills_count == 2

    Involvement.delete().where(Involvement.killmail_id == 31).execute()
    result = aggregate(db)
    assert {p.period_type: p.rows_deleted for p in result.periods} == {
        "daily": 1,
        "weekly": 0,
        "monthly": 0,
    }
    assert set(stats_of(1, "daily")) == {dt.date(2025, 6, 2)}
    assert stats_of(1, "weekly")[dt.date(2025, 6, 2)].kills_count == 1

    Involvement.delete().execute()
    aggregate(db)
    assert KillmailStatistics.select().count() == 0


def test_since_recomputes_later_periods_only(db):
    tracked = {1}
    store_envelopes(
        db,
        [
            envelope(40, "2025-01-10T12:00:00Z", attackers=[1]),
            envelope(41, "2025-02-10T12:00:00Z", attackers=[1]),
        ],
        tracked,
        processed_at=PAST,
    )
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    KillmailStatistics.update(kills_count=99).execute()  # damage every row
    aggregate(db, periods=["monthly"], since=dt.date(2025, 2, 5))
    monthly = stats_of(1, "monthly")
    assert monthly[dt.date(2025, 2, 1)].kills_count == 1
    assert monthly[dt.date(2025, 1, 1)].kills_count == 99
    assert stats_of(1, "daily")[dt.date(2025, 2, 10)].kills_count == 99  # not asked for


def test_rebuild_keeps_periods_retention_has_pruned(db):
    tracked = {1}
    store_envelopes(
        db,
        [
            envelope(50, "2025-01-30T12:00:00Z", attackers=[1]),
            envelope(51, "2025-02-02T12:00:00Z", attackers=[1]),
            envelope(52, "2025-02-20T12:00:00Z", attackers=[1]),
        ],
        tracked,
        processed_at=PAST,
    )
    aggregate(db)
    # as if retention deleted everything before 2025-02-01
    StatisticsRetention.create(id=1, pruned_before=dt.date(2025, 2, 1), updated_at=PAST)
    Involvement.delete().where(Involvement.killmail_id == 50).execute()
    result = aggregate(db, rebuild=True)
    assert result.frozen_before == dt.date(2025, 2, 1)
    assert stats_of(1, "monthly")[dt.date(2025, 1, 1)].kills_count == 1  # kept
    assert stats_of(1, "daily")[dt.date(2025, 1, 30)].kills_count == 1  # kept
    # the week of Mon 2025-01-27 was partly pruned: it keeps both kills
    assert stats_of(1, "weekly")[dt.date(2025, 1, 27)].kills_count == 2
    assert stats_of(1, "monthly")[dt.date(2025, 2, 1)].kills_count == 2  # recomputed


def test_rebuild_recomputes_rows_changed_behind_the_change_marker(db):
    # a hand fix that leaves processed_at alone: only --rebuild can see it, and it must
    # rewrite exactly the affected rows while every other stored row stays as it is
    tracked = {1, 2}
    mails = [
        envelope(60, "2025-06-02T10:00:00Z", victim=2, attackers=[1], value="100.00"),
        envelope(61, "2025-06-03T10:00:00Z", victim=1, attackers=[2], value="5.00"),
        envelope(62, "2025-06-20T10:00:00Z", victim=9, attackers=[1], value="7.00"),
    ]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    aggregate(db, now=PAST + dt.timedelta(hours=2))
    assert aggregate(db, now=PAST + dt.timedelta(hours=3)).rows_written == 0  # incremental

    Involvement.update(total_value=Decimal("250.00"), ship_type_id=670).where(
        Involvement.killmail_id == 60
    ).execute()
    result = aggregate(db, rebuild=True)
    # kill 60 is in day, week and month of both characters: six rows
    assert result.rows_written == 6
    one = stats_of(1, "monthly")[dt.date(2025, 6, 1)]
    assert one.isk_destroyed == Decimal("257.00")
    assert one.ship_usage == {"670": 1, "587": 1, "11999": 1}
    two = stats_of(2, "daily")[dt.date(2025, 6, 2)]
    assert (two.isk_lost, two.ship_usage) == (Decimal("250.00"), {"670": 1})
    assert stats_of(1, "daily")[dt.date(2025, 6, 20)].isk_destroyed == Decimal("7.00")


def test_unknown_period_is_refused(db):
    with pytest.raises(aggregation.UnknownPeriod):
        aggregate(db, periods=["yearly"])


# --- boundaries, exact ISK ------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2025, 3, 2), {"weekly": (dt.date(2025, 2, 24), dt.date(2025, 3, 2))}),  # Sunday
        (dt.date(2025, 3, 3), {"weekly": (dt.date(2025, 3, 3), dt.date(2025, 3, 9))}),  # Monday
        (dt.date(2024, 2, 29), {"monthly": (dt.date(2024, 2, 1), dt.date(2024, 2, 29))}),
        (dt.date(2025, 12, 31), {"monthly": (dt.date(2025, 12, 1), dt.date(2025, 12, 31))}),
        (dt.date(2026, 1, 1), {"weekly": (dt.date(2025, 12, 29), dt.date(2026, 1, 4))}),
    ],
)
def test_period_bounds(day, expected):
    for period_type, bounds in expected.items():
        assert period_bounds(period_type, day) == bounds


def test_boundaries_in_sql(db):
    tracked = {1}
    times = [
        "2025-03-02T23:59:59Z",  # Sunday, last second
        "2025-03-03T00:00:00Z",  # Monday, first second
        "2024-02-29T23:59:59Z",  # leap day
        "2024-03-01T00:00:00Z",
        "2025-12-31T23:59:59.999Z",  # year end (week of Mon 2025-12-29)
        "2026-01-01T00:00:00Z",
        "2025-06-30T12:00:00+02:00",  # 10:00 UTC on the 30th
        "2025-07-01T01:30:00+02:00",  # 23:30 UTC on June 30th
    ]
    mails = [envelope(60 + i, t, attackers=[1]) for i, t in enumerate(times)]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    aggregate(db)
    daily = {d: s.kills_count for d, s in stats_of(1, "daily").items()}
    assert daily == {
        dt.date(2025, 3, 2): 1,
        dt.date(2025, 3, 3): 1,
        dt.date(2024, 2, 29): 1,
        dt.date(2024, 3, 1): 1,
        dt.date(2025, 12, 31): 1,
        dt.date(2026, 1, 1): 1,
        dt.date(2025, 6, 30): 2,
    }
    weekly = {(d, s.period_end): s.kills_count for d, s in stats_of(1, "weekly").items()}
    assert weekly == {
        (dt.date(2025, 2, 24), dt.date(2025, 3, 2)): 1,
        (dt.date(2025, 3, 3), dt.date(2025, 3, 9)): 1,
        (dt.date(2024, 2, 26), dt.date(2024, 3, 3)): 2,
        (dt.date(2025, 12, 29), dt.date(2026, 1, 4)): 2,
        (dt.date(2025, 6, 30), dt.date(2025, 7, 6)): 2,
    }
    monthly = {(d, s.period_end): s.kills_count for d, s in stats_of(1, "monthly").items()}
    assert monthly == {
        (dt.date(2025, 3, 1), dt.date(2025, 3, 31)): 2,
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29)): 1,
        (dt.date(2024, 3, 1), dt.date(2024, 3, 31)): 1,
        (dt.date(2025, 12, 1), dt.date(2025, 12, 31)): 1,
        (dt.date(2026, 1, 1), dt.date(2026, 1, 31)): 1,
        (dt.date(2025, 6, 1), dt.date(2025, 6, 30)): 2,
    }
    # periods with no activity have no row
    assert dt.date(2025, 3, 4) not in stats_of(1, "daily")
    assert dt.date(2025, 4, 1) not in stats_of(1, "monthly")


def test_exact_isk_and_figures(db):
    tracked = {1, 2}
    big = "1234567890123.45"
    mails = [
        envelope(70, "2025-05-05T10:00:00Z", victim=2, attackers=[1], value=big, solo=True),
        envelope(71, "2025-05-05T11:00:00Z", victim=2, attackers=[None, 1], value="0.05"),
        envelope(72, "2025-05-05T12:00:00Z", victim=2, attackers=[None], value=big),  # npc
        envelope(73, "2025-05-05T13:00:00Z", victim=1, attackers=[2], value=None),  # no value
    ]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    aggregate(db)
    one = stats_of(1, "daily")[dt.date(2025, 5, 5)]
    assert (one.kills_count, one.deaths_count) == (2, 1)
    assert one.isk_destroyed == Decimal("1234567890123.50")
    assert one.isk_lost == Decimal("0.00")
    assert (one.solo_kills, one.final_blows, one.npc_deaths) == (1, 1, 0)
    assert one.ship_usage == {"11999": 2, "587": 1}
    assert one.region_activity == {"unknown": 3}
    two = stats_of(2, "monthly")[dt.date(2025, 5, 1)]
    assert two.isk_lost == Decimal("2469135780246.95")
    assert (two.deaths_count, two.npc_deaths, two.kills_count, two.final_blows) == (3, 1, 1, 1)


def test_character_on_both_sides_of_a_mail_counts_once_per_region(db):
    # a pilot shooting their own deployable: victim and attacker on one mail
    tracked = {1, 2}
    mails = [
        envelope(80, "2025-08-01T10:00:00Z", victim=1, attackers=[1, 2], value="10.00", system=7),
        envelope(81, "2025-08-01T11:00:00Z", victim=2, attackers=[1], value="1.00"),
        # alone in its day and week: a period with one region
        envelope(82, "2025-08-09T10:00:00Z", victim=2, attackers=[2], system=7),
    ]
    store_envelopes(db, mails, tracked, processed_at=PAST)
    Involvement.update(region_id=10000002).where(Involvement.solar_system_id == 7).execute()
    aggregate(db)
    one = stats_of(1, "daily")[dt.date(2025, 8, 1)]
    assert (one.kills_count, one.deaths_count) == (2, 1)
    assert (one.isk_destroyed, one.isk_lost) == (Decimal("11.00"), Decimal("10.00"))
    assert one.region_activity == {"10000002": 1, "unknown": 1}
    assert one.ship_usage == {"11999": 2, "587": 1}
    for period_type in ("daily", "weekly"):
        two = stats_of(2, period_type)[dt.date(2025, 8, 9 if period_type == "daily" else 4)]
        assert two.region_activity == {"10000002": 1}
    expected = reference_statistics(mails, tracked, region_of={7: 10000002}.get)
    assert_matches(expected, database_statistics(KillmailStatistics))
