"""The group's figures per UTC day (`group_days`): every stored mail counted once per side,
written by the daily aggregation and read by the group statistics. Filled here from the
stored involvements, so an installation that aggregates incrementally has every day. A
frozen copy of the model and of the SQL that fills it."""

import datetime as dt

from peewee import BigIntegerField, DateField, IntegerField, Model, PostgresqlDatabase

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class GroupDay(Model):
        day = DateField(primary_key=True)
        kills = IntegerField(default=0)
        deaths = IntegerField(default=0)
        isk_destroyed_cents = BigIntegerField(default=0)
        isk_lost_cents = BigIntegerField(default=0)
        solo_kills = IntegerField(default=0)
        final_blows = IntegerField(default=0)
        npc_deaths = IntegerField(default=0)
        attackers_on_kills = BigIntegerField(default=0)
        split_mails = IntegerField(default=0)
        updated_at = UTCDateTimeField()

        class Meta:
            database = db
            table_name = "group_days"

    return [GroupDay]


FILL = """
INSERT INTO group_days (day, kills, deaths, isk_destroyed_cents, isk_lost_cents, solo_kills,
                        final_blows, npc_deaths, attackers_on_kills, split_mails, updated_at)
SELECT m.day,
       SUM(CASE WHEN m.character_role = 'attacker' THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'victim' THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'attacker' THEN m.cents ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'victim' THEN m.cents ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'attacker' AND m.solo THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'attacker' AND m.final_blow THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'victim' AND m.npc THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.character_role = 'attacker' THEN m.attacker_count ELSE 0 END),
       SUM(CASE WHEN m.spread > 1 THEN 1 ELSE 0 END),
       {now}
FROM (SELECT w.*, COUNT(*) OVER (PARTITION BY w.killmail_id, w.character_role) AS spread
      FROM (SELECT {day} AS day, k.killmail_id, k.character_role, MAX({cents}) AS cents,
                   {any}(k.solo) AS solo, {any}(k.final_blow) AS final_blow,
                   {any}(k.npc) AS npc, MAX(k.attacker_count) AS attacker_count
            FROM killmails k GROUP BY k.killmail_id, k.character_role, 1) AS w) AS m
GROUP BY m.day
"""


def up(migrator, db):
    db.create_tables(_models(db))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(
            FILL.format(
                now="%s",
                day="k.kill_time::date",
                cents="COALESCE(CAST(k.total_value * 100 AS BIGINT), 0)",
                any="bool_or",
            ),
            (now,),
        )
    else:
        db.execute_sql(
            FILL.format(
                now="?",
                day="date(k.kill_time)",
                cents="COALESCE(CAST(ROUND(k.total_value * 100) AS INTEGER), 0)",
                any="MAX",
            ),
            (now.isoformat(sep=" "),),
        )


def down(migrator, db):
    db.drop_tables(_models(db))
