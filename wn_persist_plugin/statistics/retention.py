"""Retention: delete involvements older than the retention window, never before the
statistics have absorbed them. Statistics rows are kept.

The cutoff is a UTC day: involvements before `today - retention_days` go, except those of a
period still open (this week, this month: see `cutoff_day`). Before deleting,
`statistics_retention.pruned_before` is raised to the cutoff, which freezes every period
starting before it (aggregation then never recomputes them from what is left). Nothing is
deleted while an involvement that shares a period with the doomed ones is not yet
aggregated (written or changed after the last aggregation, or a pending deletion mark):
the next aggregation absorbs it and the next prune proceeds. Deletes run set-based in
bounded batches, one short transaction each.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from peewee import Database

from ..db.connect import write_transaction
from ..db.dialect import day_param, instant_param
from ..db.joblock import STATISTICS_JOB, job_lock
from ..db.models import StatisticsRetention
from ..db.status import late_dropped_total
from .aggregation import PERIODS, absorbed_before, frozen_before, period_bounds

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000
"""Involvements deleted per statement (and transaction)."""


@dataclass
class PruneResult:
    cutoff: dt.date
    """Involvements before this UTC day are (or would be) deleted."""
    dry_run: bool
    deleted: int = 0
    """Involvements deleted (a dry run: that would be deleted)."""
    blocked: int = 0
    """Involvements not yet aggregated that hold the prune back until the next run."""
    late_dropped: int = 0
    """Of `deleted`: involvements that arrived after their period was frozen by an earlier
    prune, so no statistics could absorb them."""
    first_late_killmail: int | None = None
    """The lowest killmail id among them (named in the warning)."""
    late_dropped_total: int = 0
    """Every involvement dropped late so far (this run included; kept in
    `statistics_retention.late_dropped`)."""
    batches: int = 0
    frozen_before: dt.date | None = None

    @property
    def waiting(self) -> bool:
        return self.blocked > 0


def cutoff_day(retention_days: int, now: dt.datetime | None = None) -> dt.date:
    """The first UTC day kept: `today - retention_days`, but never later than the start of
    a period still open (this week, this month). Pruning freezes every period that starts
    before the cutoff, so a shorter retention must not freeze the current month or week
    while kills still arrive in it."""
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    open_starts = (period_bounds(period, today)[0] for period in PERIODS)
    return min(today - dt.timedelta(days=retention_days), *open_starts)


def _horizon(cutoff: dt.date) -> dt.date:
    """The day after the last period (of any type) that contains a day before `cutoff`."""
    last_doomed = cutoff - dt.timedelta(days=1)
    return max(period_bounds(p, last_doomed)[1] for p in PERIODS) + dt.timedelta(days=1)


def prune(
    db: Database,
    retention_days: int,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    wait: float = 0.0,
    batch_size: int = BATCH_SIZE,
) -> PruneResult:
    """Delete involvements older than `retention_days` whose statistics are aggregated.

    Holds the statistics job lock (waiting up to `wait` seconds, else `JobBusy`).
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = cutoff_day(retention_days, now)
    p = db.param
    day = functools.partial(day_param, db)
    stamp = functools.partial(instant_param, db)

    with job_lock(db, STATISTICS_JOB, wait=wait):
        boundary = frozen_before(db)
        absorbed = absorbed_before(db)
        result = PruneResult(cutoff=cutoff, dry_run=dry_run, frozen_before=boundary)
        doomed = db.execute_sql(
            f"SELECT COUNT(*) FROM killmails WHERE kill_time < {p}", [day(cutoff)]
        ).fetchone()[0]
        if not doomed:
            return result
        lower = boundary or dt.date.min
        if absorbed is None:
            result.blocked = doomed
        else:
            pending_rows = db.execute_sql(
                f"SELECT COUNT(*) FROM killmails WHERE processed_at >= {p}"
                f" AND kill_time >= {p} AND kill_time < {p}",
                [stamp(absorbed), day(lower), day(_horizon(cutoff))],
            ).fetchone()[0]
            pending_marks = db.execute_sql(
                f"SELECT COUNT(*) FROM statistics_deletions WHERE marked_at >= {p}"
                f" AND day >= {p} AND day < {p}",
                [stamp(absorbed), day(lower), day(_horizon(cutoff))],
            ).fetchone()[0]
            result.blocked = pending_rows + pending_marks
        if result.blocked:
            log.info(
                "retention waits: %d involvements before %s are not aggregated yet",
                result.blocked,
                cutoff,
            )
            return result
        frozen_at = _boundary_set_at(db)
        result.late_dropped_total = late_dropped_total(db) or 0
        if boundary is not None and frozen_at is not None:
            count, first = db.execute_sql(
                f"SELECT COUNT(*), MIN(killmail_id) FROM killmails"
                f" WHERE kill_time < {p} AND processed_at > {p}",
                [day(boundary), stamp(frozen_at)],
            ).fetchone()
            result.late_dropped, result.first_late_killmail = int(count), first
        if dry_run:
            result.deleted = doomed
            return result
        _raise_boundary(db, cutoff, result.late_dropped)
        result.late_dropped_total += result.late_dropped
        result.frozen_before = max(cutoff, boundary) if boundary else cutoff
        while True:
            with write_transaction(db):
                cursor = db.execute_sql(
                    "DELETE FROM killmails WHERE id IN (SELECT id FROM killmails"
                    f" WHERE kill_time < {p} LIMIT {int(batch_size)})",
                    [day(cutoff)],
                )
                count = cursor.rowcount
            if count <= 0:
                break
            result.deleted += count
            result.batches += 1
        if result.late_dropped:
            others = result.late_dropped - 1
            log.warning(
                "retention dropped killmail %s%s: it arrived after its period was frozen by "
                "an earlier prune, so no statistics counted it (%d dropped late so far)",
                result.first_late_killmail,
                f" and {others} more late involvements" if others else "",
                result.late_dropped_total,
            )
        log.info("retention deleted %d involvements before %s", result.deleted, cutoff)
        return result


def _boundary_set_at(db: Database) -> dt.datetime | None:
    row = StatisticsRetention.get_or_none(StatisticsRetention.id == 1)
    return row.updated_at if row else None


def _raise_boundary(db: Database, cutoff: dt.date, late_dropped: int) -> None:
    """Record (before deleting anything) that periods starting before `cutoff` are frozen,
    and add the involvements about to be dropped late to the running total."""
    now = dt.datetime.now(dt.UTC)
    with write_transaction(db):
        current = StatisticsRetention.get_or_none(StatisticsRetention.id == 1)
        if current is None:
            StatisticsRetention.create(
                id=1, pruned_before=cutoff, updated_at=now, late_dropped=late_dropped
            )
            return
        if current.pruned_before >= cutoff and not late_dropped:
            return
        if current.pruned_before < cutoff:
            current.pruned_before = cutoff
            current.updated_at = now
        current.late_dropped += late_dropped
        current.save()
