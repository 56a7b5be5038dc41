"""Reports: `reports_sent`, one row per period whose report was posted, so that each
period is reported once even with several processes. A frozen copy of the model."""

from peewee import CharField, CompositeKey, DateField, Model

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class ReportSent(Model):
        period_type = CharField(max_length=16)
        period_start = DateField()
        sent_at = UTCDateTimeField()

        class Meta:
            database = db
            table_name = "reports_sent"
            primary_key = CompositeKey("period_type", "period_start")

    return [ReportSent]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
