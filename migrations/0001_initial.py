"""Initial schema: tracked_characters, killmails (one row per killmail, character and
role), killmail_statistics. A frozen copy of the models as they were at this version."""

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    IntegerField,
    JSONField,
    Model,
)

from wn_persist_plugin.db.fields import ISKField, UTCDateTimeField


def _models(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class TrackedCharacter(Base):
        character_id = BigIntegerField(unique=True)
        character_name = CharField(null=True)
        corporation_id = BigIntegerField(null=True)
        corporation_name = CharField(null=True)
        corporation_ticker = CharField(null=True)
        alliance_id = BigIntegerField(null=True)
        alliance_name = CharField(null=True)
        alliance_ticker = CharField(null=True)
        tracked = BooleanField(default=True)
        tracked_since = UTCDateTimeField()
        updated_at = UTCDateTimeField()

        class Meta:
            table_name = "tracked_characters"

    class Killmail(Base):
        id = BigAutoField()
        killmail_id = BigIntegerField()
        kill_time = UTCDateTimeField()
        solar_system_id = BigIntegerField(null=True)
        solar_system_name = CharField(null=True)
        region_id = BigIntegerField(null=True)
        region_name = CharField(null=True)
        total_value = ISKField(null=True)
        character_role = CharField(max_length=16)
        related_character_id = BigIntegerField()
        related_character_name = CharField(null=True)
        ship_type_id = BigIntegerField(null=True)
        ship_type_name = CharField(null=True)
        final_blow = BooleanField(default=False)
        solo = BooleanField(default=False)
        npc = BooleanField(default=False)
        attacker_count = IntegerField(default=0)
        zkb_data = JSONField(null=True)
        victim_data = JSONField(null=True)
        attacker_data = JSONField(null=True)
        processed_at = UTCDateTimeField()

        class Meta:
            table_name = "killmails"
            indexes = (
                (("killmail_id", "related_character_id", "character_role"), True),
                (("related_character_id", "kill_time"), False),
                (("solar_system_id", "kill_time"), False),
                (("character_role", "kill_time"), False),
            )

    class KillmailStatistics(Base):
        id = BigAutoField()
        period_type = CharField(max_length=16)
        period_start = DateField()
        period_end = DateField()
        character_id = BigIntegerField()
        character_name = CharField(null=True)
        kills_count = IntegerField(default=0)
        deaths_count = IntegerField(default=0)
        isk_destroyed = ISKField(default=0)
        isk_lost = ISKField(default=0)
        region_activity = JSONField(null=True)
        ship_usage = JSONField(null=True)
        inserted_at = UTCDateTimeField()
        updated_at = UTCDateTimeField()

        class Meta:
            table_name = "killmail_statistics"
            indexes = (
                (("character_id", "period_type", "period_start"), True),
                (("period_type", "period_start"), False),
            )

    return [TrackedCharacter, Killmail, KillmailStatistics]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
