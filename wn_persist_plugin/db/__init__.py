"""The database: connection, dialect, column types, models, migrations, job lock, status."""
