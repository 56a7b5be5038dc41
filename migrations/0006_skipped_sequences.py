"""`skipped_sequences`: R2Z2 sequences the standalone host skipped because the feed kept
answering them with a mail that cannot be parsed, so that they can be fetched later
(`wn_persist_plugin.host.feed_state.skipped_sequences`). A frozen copy of the model."""

from peewee import BigIntegerField, Model, TextField

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class SkippedSequence(Model):
        sequence = BigIntegerField(primary_key=True)
        killmail_id = BigIntegerField(null=True)
        reason = TextField()
        skipped_at = UTCDateTimeField(index=True)

        class Meta:
            database = db
            table_name = "skipped_sequences"

    return [SkippedSequence]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
