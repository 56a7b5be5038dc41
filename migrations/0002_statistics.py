"""Statistics: solo_kills, final_blows and npc_deaths on killmail_statistics; the
aggregation watermarks, the retention boundary and the deletion marks that incremental
aggregation reads; an index on killmails.processed_at (the change marker).

Deletions from `killmails` are recorded by a trigger (per character and UTC day) so that an
incremental aggregation finds periods that lost involvements. A frozen copy of the new
tables as they are at this version."""

from peewee import (
    BigIntegerField,
    CharField,
    DateField,
    IntegerField,
    Model,
    PostgresqlDatabase,
)

from wn_persist_plugin.db.fields import UTCDateTimeField

NEW_COLUMNS = ("solo_kills", "final_blows", "npc_deaths")


def _models(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class StatisticsWatermark(Base):
        period_type = CharField(max_length=16, primary_key=True)
        changes_since = UTCDateTimeField()
        last_run_at = UTCDateTimeField()
        last_rebuild_at = UTCDateTimeField(null=True)

        class Meta:
            table_name = "statistics_watermarks"

    class StatisticsRetention(Base):
        id = IntegerField(primary_key=True)
        pruned_before = DateField()
        updated_at = UTCDateTimeField()

        class Meta:
            table_name = "statistics_retention"

    class StatisticsDeletion(Base):
        character_id = BigIntegerField()
        day = DateField()
        marked_at = UTCDateTimeField()

        class Meta:
            table_name = "statistics_deletions"
            indexes = ((("character_id", "day"), True), (("marked_at",), False))

    return [StatisticsWatermark, StatisticsRetention, StatisticsDeletion]


PG_TRIGGER = """
CREATE OR REPLACE FUNCTION wn_statistics_mark_deleted() RETURNS trigger AS $$
BEGIN
    INSERT INTO statistics_deletions (character_id, day, marked_at)
    SELECT character_id, day, clock_timestamp() AT TIME ZONE 'UTC'
    FROM (SELECT DISTINCT related_character_id AS character_id, kill_time::date AS day
          FROM gone) AS changed
    ON CONFLICT (character_id, day) DO UPDATE SET marked_at = EXCLUDED.marked_at;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER killmails_statistics_deleted AFTER DELETE ON killmails
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
EXECUTE FUNCTION wn_statistics_mark_deleted();
"""

SQLITE_TRIGGER = """
CREATE TRIGGER killmails_statistics_deleted AFTER DELETE ON killmails
BEGIN
    INSERT OR REPLACE INTO statistics_deletions (character_id, day, marked_at)
    VALUES (OLD.related_character_id, date(OLD.kill_time),
            strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;
"""


def up(migrator, db):
    from peewee import IntegerField as Int

    migrator.migrate(
        *[migrator.add_column("killmail_statistics", name, Int(default=0)) for name in NEW_COLUMNS],
        migrator.add_index("killmails", ("processed_at",), False),
    )
    db.create_tables(_models(db))
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(PG_TRIGGER)
    else:
        db.execute_sql(SQLITE_TRIGGER)


def down(migrator, db):
    db.execute_sql(
        "DROP TRIGGER IF EXISTS killmails_statistics_deleted"
        + (" ON killmails" if isinstance(db, PostgresqlDatabase) else "")
    )
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("DROP FUNCTION IF EXISTS wn_statistics_mark_deleted()")
    db.drop_tables(_models(db))
    migrator.migrate(
        migrator.drop_index("killmails", "killmails_processed_at"),
        *[migrator.drop_column("killmail_statistics", name) for name in NEW_COLUMNS],
    )
