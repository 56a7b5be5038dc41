"""Retention's count of involvements it deleted that arrived after their period was frozen
(`statistics_retention.late_dropped`, a running total), for `db status` and the metrics."""

from peewee import BigIntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("statistics_retention", "late_dropped", BigIntegerField(default=0))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("statistics_retention", "late_dropped"))
