"""Reading the history: an index that serves a character's killmail pages in keyset order
(kill_time, killmail_id, character_role) at any depth, and the duration of the last
aggregation run per period type (`statistics_watermarks.last_run_seconds`)."""

from peewee import DoubleField

INDEX = "killmails_character_page"


def up(migrator, db):
    db.execute_sql(
        f"CREATE INDEX {INDEX} ON killmails "
        "(related_character_id, kill_time, killmail_id, character_role)"
    )
    migrator.migrate(
        migrator.add_column("statistics_watermarks", "last_run_seconds", DoubleField(null=True))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("statistics_watermarks", "last_run_seconds"))
    db.execute_sql(f"DROP INDEX IF EXISTS {INDEX}")
