"""Round trips, time zones, exact ISK sums and the involvement key, on both databases."""

import datetime as dt
from decimal import Decimal

import pytest
from peewee import IntegrityError, fn

from wn_persist_plugin.db.connect import is_postgres, is_sqlite
from wn_persist_plugin.db.models import Involvement, KillmailStatistics, TrackedCharacter

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))


def involvement(**kw):
    row = dict(
        killmail_id=1,
        kill_time=dt.datetime(2025, 11, 2, 18, 40, 11, tzinfo=UTC),
        solar_system_id=30004759,
        total_value=Decimal("1234.56"),
        character_role="attacker",
        related_character_id=2123019188,
        processed_at=dt.datetime.now(UTC),
    )
    row.update(kw)
    return row


def test_round_trip_every_column(db):
    when = dt.datetime(2025, 11, 2, 18, 40, 11, 123456, tzinfo=UTC)
    row = involvement(
        kill_time=when,
        solar_system_name="J123456",
        region_id=11000001,
        region_name="A-R00001",
        total_value=Decimal("99999999999.99"),
        related_character_name="Nimby Karen",
        ship_type_id=9_223_372_036_854_775_807,
        ship_type_name="Sabre",
        final_blow=True,
        solo=True,
        npc=False,
        attacker_count=3753,
        zkb_data={"totalValue": 99999999999.99, "labels": ["pvp", "loc:w-space"]},
        victim_data={"character_id": 1, "items": [{"item_type_id": 2, "items": []}]},
        attacker_data={"character_id": 2123019188, "final_blow": True},
    )
    Involvement.insert(row).execute()
    got = Involvement.get()
    for key, value in row.items():
        if key != "processed_at":
            assert getattr(got, key) == value, key
    assert got.kill_time.tzinfo is not None and got.kill_time.utcoffset() == dt.timedelta(0)


def test_statistics_round_trip_with_dates(db):
    now = dt.datetime.now(UTC)
    KillmailStatistics.create(
        period_type="weekly",
        period_start=dt.date(2024, 2, 26),
        period_end=dt.date(2024, 3, 3),
        character_id=5,
        kills_count=3,
        isk_destroyed=Decimal("123456789012345.67"),
        region_activity={"10000002": 2, "unknown": 1},
        ship_usage={"587": 3},
        inserted_at=now,
        updated_at=now,
    )
    got = KillmailStatistics.get()
    assert got.period_start == dt.date(2024, 2, 26)
    assert got.period_end == dt.date(2024, 3, 3)
    assert got.isk_destroyed == Decimal("123456789012345.67")
    assert got.isk_lost == Decimal("0.00")
    assert got.region_activity == {"10000002": 2, "unknown": 1}


def test_naive_datetimes_are_refused(db):
    with pytest.raises(ValueError, match="naive"):
        Involvement.insert(involvement(kill_time=dt.datetime(2025, 1, 1))).execute()


def test_aware_times_are_one_instant_whatever_the_offset_and_session_zone(db):
    if is_postgres(db):
        db.execute_sql("SET TIME ZONE 'Pacific/Auckland'")
    # 23:30 at +02:00 is 21:30 UTC; 01:30 at +02:00 on the 2nd is 23:30 UTC on the 1st.
    Involvement.insert(
        involvement(killmail_id=1, kill_time=dt.datetime(2025, 1, 1, 23, 30, tzinfo=PLUS2))
    ).execute()
    Involvement.insert(
        involvement(killmail_id=2, kill_time=dt.datetime(2025, 1, 2, 1, 30, tzinfo=PLUS2))
    ).execute()
    Involvement.insert(
        involvement(killmail_id=3, kill_time=dt.datetime(2025, 1, 2, 0, 0, 0, tzinfo=UTC))
    ).execute()
    start = dt.datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    end = dt.datetime(2025, 1, 2, 0, 0, tzinfo=UTC)
    in_day = (
        Involvement.select(Involvement.killmail_id)
        .where(Involvement.kill_time >= start, Involvement.kill_time < end)
        .order_by(Involvement.killmail_id)
    )
    assert [r.killmail_id for r in in_day] == [1, 2]
    # The same range given in another zone selects the same rows.
    in_day_plus2 = Involvement.select().where(
        Involvement.kill_time >= start.astimezone(PLUS2),
        Involvement.kill_time < end.astimezone(PLUS2),
    )
    assert in_day_plus2.count() == 2
    days = {
        str(r.day)[:10]: r.n
        for r in Involvement.select(
            fn.date(Involvement.kill_time).alias("day"), fn.COUNT(Involvement.id).alias("n")
        )
        .group_by(fn.date(Involvement.kill_time))
        .objects()
    }
    assert days == {"2025-01-01": 2, "2025-01-02": 1}
    got = Involvement.get(Involvement.killmail_id == 2).kill_time
    assert got == dt.datetime(2025, 1, 1, 23, 30, tzinfo=UTC)


def exact_sum_sql(db):
    # SQLite keeps ISK as exact decimal text; sum it as integer cents.
    if is_sqlite(db):
        return "SELECT SUM(CAST(ROUND(total_value * 100) AS INTEGER)) FROM killmails"
    return "SELECT SUM(total_value * 100) FROM killmails"


def test_isk_sums_are_exact_to_the_cent_near_1e14(db):
    values = [Decimal("99999999999.99")] * 999 + [Decimal("0.01"), Decimal("12345.67")]
    rows = [involvement(killmail_id=i, total_value=v) for i, v in enumerate(values)]
    Involvement.insert_many(rows).execute()
    cents = int(db.execute_sql(exact_sum_sql(db)).fetchone()[0])
    expected = sum(values)
    assert expected > Decimal("9.9e13")
    assert Decimal(cents) / 100 == expected
    # and the stored value reads back exactly
    now = dt.datetime.now(UTC)
    KillmailStatistics.create(
        period_type="monthly",
        period_start=dt.date(2025, 1, 1),
        period_end=dt.date(2025, 1, 31),
        character_id=1,
        isk_destroyed=expected,
        inserted_at=now,
        updated_at=now,
    )
    assert KillmailStatistics.get().isk_destroyed == expected


def test_isk_column_shows_isk_to_sql_readers(db):
    Involvement.insert(involvement(total_value=Decimal("1234.5"))).execute()
    raw = db.execute_sql("SELECT total_value FROM killmails").fetchone()[0]
    assert str(raw) == "1234.50"


def test_involvement_key_is_killmail_character_role(db):
    Involvement.insert(involvement(related_character_id=1, character_role="attacker")).execute()
    Involvement.insert(involvement(related_character_id=2, character_role="attacker")).execute()
    Involvement.insert(involvement(related_character_id=1, character_role="victim")).execute()
    with pytest.raises(IntegrityError), db.atomic():
        Involvement.insert(involvement(related_character_id=1, character_role="attacker")).execute()
    # a redelivery can be ignored on both dialects with the same statement
    (
        Involvement.insert(involvement(related_character_id=2, character_role="attacker"))
        .on_conflict(
            action="nothing",
            conflict_target=[
                Involvement.killmail_id,
                Involvement.related_character_id,
                Involvement.character_role,
            ],
        )
        .execute()
    )
    assert Involvement.select().count() == 3


def test_json_columns_can_be_queried(db):
    Involvement.insert(
        involvement(killmail_id=1, zkb_data={"solo": True, "labels": ["pvp"]})
    ).execute()
    Involvement.insert(
        involvement(killmail_id=2, related_character_id=9, zkb_data={"solo": False})
    ).execute()
    solo = Involvement.select().where(Involvement.zkb_data["solo"] == True)  # noqa: E712
    assert [r.killmail_id for r in solo] == [1]
    labelled = Involvement.select().where(Involvement.zkb_data.has_key("labels"))
    assert [r.killmail_id for r in labelled] == [1]


def test_tracked_character_id_is_unique(db):
    now = dt.datetime.now(UTC)
    TrackedCharacter.create(character_id=2123019188, tracked_since=now, updated_at=now)
    with pytest.raises(IntegrityError), db.atomic():
        TrackedCharacter.create(character_id=2123019188, tracked_since=now, updated_at=now)
