"""Where a mail's value came from: `killmails.value_source` (`zkb`, `esi_prices`, `none`;
existing rows `zkb` when they have a value, else `none`), a partial index on the mails
without a zKillboard value, and `market_prices`, the cache of ESI's market prices. A
frozen copy of the new model."""

from peewee import BigIntegerField, DoubleField, Model

from wn_persist_plugin.db.fields import UTCDateTimeField

INDEX = "killmails_without_zkb_value"


def _models(db):
    class MarketPrice(Model):
        type_id = BigIntegerField(primary_key=True)
        average_price = DoubleField(null=True)
        fetched_at = UTCDateTimeField()

        class Meta:
            database = db
            table_name = "market_prices"

    return [MarketPrice]


def up(migrator, db):
    # A column default in the table itself (not only the model's), so that every writer,
    # whatever it names, stores `none` for a row it says nothing about.
    db.execute_sql(
        "ALTER TABLE killmails ADD COLUMN value_source VARCHAR(16) NOT NULL DEFAULT 'none'"
    )
    db.execute_sql("UPDATE killmails SET value_source = 'zkb' WHERE total_value IS NOT NULL")
    db.execute_sql(f"CREATE INDEX {INDEX} ON killmails (killmail_id) WHERE value_source <> 'zkb'")
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(_models(db))
    db.execute_sql(f"DROP INDEX IF EXISTS {INDEX}")
    migrator.migrate(migrator.drop_column("killmails", "value_source"))
