"""Universe and names: regions, constellations, systems and types from the SDE or ESI; a
names cache (id -> name, category) filled from ESI; backfill cursors for resumable
imports. A frozen copy of the models as they were at this version."""

from peewee import BigIntegerField, BooleanField, CharField, DoubleField, Model, TextField

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class UniverseRegion(Base):
        region_id = BigIntegerField(primary_key=True)
        name = CharField()

        class Meta:
            table_name = "universe_regions"

    class UniverseConstellation(Base):
        constellation_id = BigIntegerField(primary_key=True)
        region_id = BigIntegerField(index=True)
        name = CharField()

        class Meta:
            table_name = "universe_constellations"

    class UniverseSystem(Base):
        system_id = BigIntegerField(primary_key=True)
        constellation_id = BigIntegerField()
        region_id = BigIntegerField(index=True)
        name = CharField()
        security = DoubleField(null=True)

        class Meta:
            table_name = "universe_systems"

    class UniverseType(Base):
        type_id = BigIntegerField(primary_key=True)
        group_id = BigIntegerField(null=True)
        group_name = CharField(null=True)
        category_id = BigIntegerField(null=True)
        name = CharField()

        class Meta:
            table_name = "universe_types"

    class EntityName(Base):
        entity_id = BigIntegerField(primary_key=True)
        name = CharField(null=True)
        category = CharField(max_length=32, null=True)
        fetched_at = UTCDateTimeField()

        class Meta:
            table_name = "entity_names"

    class BackfillCursor(Base):
        source = CharField(max_length=200, primary_key=True)
        position = TextField(null=True)
        done = BooleanField(default=False)
        updated_at = UTCDateTimeField()

        class Meta:
            table_name = "backfill_cursors"

    return [
        UniverseRegion,
        UniverseConstellation,
        UniverseSystem,
        UniverseType,
        EntityName,
        BackfillCursor,
    ]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
