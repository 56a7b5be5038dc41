"""Standalone host state: `feed_state`, a small key/value table (the last R2Z2 sequence
the host handled, under the key `r2z2.last_sequence`). A frozen copy of the model."""

from peewee import CharField, Model, TextField

from wn_persist_plugin.db.fields import UTCDateTimeField


def _models(db):
    class FeedState(Model):
        key = CharField(max_length=64, primary_key=True)
        value = TextField()
        updated_at = UTCDateTimeField()

        class Meta:
            database = db
            table_name = "feed_state"

    return [FeedState]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
