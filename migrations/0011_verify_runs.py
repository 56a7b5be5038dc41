"""Verification runs: `verify_runs`, one row per `wn-persist verify` or scheduled verify,
with its counts, so that `/metrics` of any process shows the last one and instances
sharing a database run the scheduled verification once per schedule. A frozen copy of
the model."""

from peewee import BigAutoField, BooleanField, DateField, IntegerField, Model, TextField

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class VerifyRun(Model):
        id = BigAutoField()
        started_at = UTCDateTimeField(index=True)
        finished_at = UTCDateTimeField(null=True)
        scheduled = BooleanField(default=False)
        from_day = DateField()
        to_day = DateField()
        characters = IntegerField(default=0)
        on_zkillboard = IntegerField(default=0)
        stored = IntegerField(default=0)
        missing = IntegerField(default=0)
        extra = IntegerField(default=0)
        unpriced = IntegerField(default=0)
        repaired = IntegerField(default=0)
        error = TextField(null=True)

        class Meta:
            database = db
            table_name = "verify_runs"

    return [VerifyRun]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
