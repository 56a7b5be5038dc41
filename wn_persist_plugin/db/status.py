"""`db status`: what database this is, its schema version and its contents."""

from __future__ import annotations

from dataclasses import dataclass, field

from peewee import Database

from ..redact import mask_url
from . import migrator
from .connect import database_size
from .models import ALL_MODELS, SkippedSequence


def late_dropped_total(db: Database) -> int | None:
    """Involvements retention dropped late so far (`statistics_retention.late_dropped`);
    None before the first prune, or when the schema is older than migration 0008."""
    if "statistics_retention" not in db.get_tables():
        return None
    if "late_dropped" not in {c.name for c in db.get_columns("statistics_retention")}:
        return None
    row = db.execute_sql("SELECT late_dropped FROM statistics_retention WHERE id = 1").fetchone()
    return int(row[0]) if row else None


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
    skipped_sequences: int | None = None
    """R2Z2 sequences `run` skipped for an unusable mail; None without the table."""
    newest_skipped: str | None = None
    """The newest of them: sequence, killmail id, when."""
    late_dropped: int | None = None
    """Involvements retention deleted that arrived after their period was frozen (running
    total); None before the first prune."""


def database_status(db: Database, url: str) -> DatabaseStatus:
    """Schema version, pending migrations, rows per table and size of `db`."""
    with db.connection_context():
        state = migrator.state(db)
        tables = set(db.get_tables())
        counts: dict[str, int | None] = {}
        for model in ALL_MODELS:
            name = model._meta.table_name
            counts[name] = model.select().count() if name in tables else None
        skipped = counts.get(SkippedSequence._meta.table_name)
        newest = None
        if skipped:
            row = SkippedSequence.select().order_by(SkippedSequence.sequence.desc()).get()
            kid = row.killmail_id if row.killmail_id is not None else "?"
            newest = (
                f"sequence {row.sequence} (killmail {kid}, {row.skipped_at:%Y-%m-%d %H:%M} UTC)"
            )
        return DatabaseStatus(
            url=mask_url(url),
            version=state.version,
            latest=state.latest,
            pending=state.pending,
            row_counts=counts,
            size_bytes=database_size(db),
            skipped_sequences=skipped,
            newest_skipped=newest,
            late_dropped=late_dropped_total(db),
        )
