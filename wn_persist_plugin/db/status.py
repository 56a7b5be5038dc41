"""`db status`: what database this is, its schema version and its contents."""

from __future__ import annotations

from dataclasses import dataclass, field

from peewee import Database

from ..redact import mask_url
from . import migrator
from .connect import database_size
from .models import ALL_MODELS


@dataclass(frozen=True)
class DatabaseStatus:
    url: str
    """The database URL with the password masked."""
    version: int
    latest: int
    pending: list[str]
    row_counts: dict[str, int | None] = field(default_factory=dict)
    """Rows per table; None for a table that does not exist yet."""
    size_bytes: int | None = None


def database_status(db: Database, url: str) -> DatabaseStatus:
    """Schema version, pending migrations, rows per table and size of `db`."""
    with db.connection_context():
        state = migrator.state(db)
        tables = set(db.get_tables())
        counts: dict[str, int | None] = {}
        for model in ALL_MODELS:
            name = model._meta.table_name
            counts[name] = model.select().count() if name in tables else None
        return DatabaseStatus(
            url=mask_url(url),
            version=state.version,
            latest=state.latest,
            pending=state.pending,
            row_counts=counts,
            size_bytes=database_size(db),
        )
