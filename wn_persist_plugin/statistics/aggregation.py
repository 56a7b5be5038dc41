"""Daily, weekly and monthly statistics per tracked character, computed by SQL.

Each period type is one `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`, on
SQLite and PostgreSQL alike; no character's rows are ever loaded into Python. An
incremental run groups the changed periods' involvements (`killmails`) directly. A rebuild
first groups all involvements by character, day, ship and region into a temporary table
once, and that by character and day into another; weeks and months regroup the days
(every figure adds up over days), and only periods with several ships or regions build
their maps from the first table's rows. Periods are UTC calendar periods: a day, an ISO
week (Monday to Sunday), a month; `period_start` / `period_end` are their first and last
day.

Incremental runs (the default) recompute only the (character, period) pairs that have an
involvement written or changed since the last run (`killmails.processed_at`, the change
marker) or that lost one (`statistics_deletions`, filled by a trigger on `killmails`).
The window starts `overlap` before the previous run's start: a writer may stamp a row
before a run starts and commit it after the run has read, and recomputing a period is
idempotent, so re-reading that margin is cheap and catches such rows.

Periods that start before the retention boundary (`statistics_retention.pruned_before`)
are never recomputed, not even by `rebuild`: some of their involvements are gone, so
their stored figures are the only complete ones. See docs/statistics.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from peewee import Database, fn

from ..db.connect import write_transaction
from ..db.dialect import is_postgres
from ..db.joblock import STATISTICS_JOB, job_lock
from ..db.models import StatisticsDeletion, StatisticsRetention, StatisticsWatermark
from ..errors import UnknownPeriod
from .sqltext import ReadSql

log = logging.getLogger(__name__)

PERIODS: tuple[str, ...] = ("daily", "weekly", "monthly")
WORK_MEM = "64MB"
"""PostgreSQL `work_mem` for an aggregation transaction."""
SQLITE_CACHE_KIB = 256 * 1024
"""SQLite page cache (and so in-memory sort space) during a run, in KiB; pages are only
allocated as the run needs them."""
DEFAULT_OVERLAP = dt.timedelta(hours=1)
"""How far before the previous run's start an incremental run looks for changes: the
longest time a writer may take between stamping `processed_at` and committing."""


@dataclass
class PeriodResult:
    period_type: str
    mode: str
    """`incremental`, `rebuild` (no watermark yet counts as a rebuild) or `unchanged`."""
    periods_examined: int | None = None
    """(character, period) pairs recomputed; None for a rebuild (every pair)."""
    rows_written: int = 0
    """Statistics rows inserted or whose figures changed."""
    rows_deleted: int = 0
    """Statistics rows of periods left without involvements."""
    group_days_written: int = 0
    """Daily only: `group_days` rows inserted or whose figures changed."""
    group_days_deleted: int = 0
    """Daily only: `group_days` rows of days left without involvements."""
    seconds: float = 0.0


@dataclass
class AggregateResult:
    periods: list[PeriodResult] = field(default_factory=list)
    frozen_before: dt.date | None = None
    """Periods starting before this day were left alone (retention pruned them)."""

    @property
    def rows_written(self) -> int:
        return sum(p.rows_written for p in self.periods)

    @property
    def rows_deleted(self) -> int:
        return sum(p.rows_deleted for p in self.periods)


def period_bounds(period_type: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day (inclusive) of the UTC period containing `day`."""
    if period_type == "daily":
        return day, day
    if period_type == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    if period_type == "monthly":
        start = day.replace(day=1)
        following = (start + dt.timedelta(days=32)).replace(day=1)
        return start, following - dt.timedelta(days=1)
    raise UnknownPeriod(period_type, PERIODS)


# --- the aggregation's dialect differences (the shared ones are in sqltext.py) -----------


class _Sql(ReadSql):
    """The aggregation's SQL fragments that differ between SQLite and PostgreSQL (on top of
    the read queries' ones)."""

    def next_start(self, period_type: str, start: str) -> str:
        """The day after the period starting at `start` (exclusive end of its range)."""
        if self.pg:
            if period_type == "monthly":
                return f"(({start}) + interval '1 month')::date"
            return f"(({start}) + {1 if period_type == 'daily' else 7})"
        if period_type == "monthly":
            return f"date({start}, '+1 month')"
        return f"date({start}, '+{1 if period_type == 'daily' else 7} days')"

    def period_end(self, period_type: str, start: str) -> str:
        """The last day of the period starting at `start`."""
        following = self.next_start(period_type, start)
        return f"({following} - 1)" if self.pg else f"date({following}, '-1 day')"

    def isk(self, total: str) -> str:
        """Summed cents as stored in the ISK column (SQLite: exact decimal text)."""
        if self.pg:
            return f"CAST(({total}) / 100.0 AS NUMERIC(20, 2))"
        return f"printf('%d.%02d', ({total}) / 100, ({total}) % 100)"

    def json_object(self, key: str, value: str, where: str) -> str:
        """Aggregate: a JSON object of `key` (digits or a plain word) -> `value` (a number)
        over the rows matching `where`; NULL without such rows. PostgreSQL: the text is
        built by string_agg and parsed once (faster than jsonb_object_agg, which
        rebuilds a jsonb value per row)."""
        if self.pg:
            pairs = f"""string_agg('"' || {key} || '":' || {value}, ',') FILTER (WHERE {where})"""
            return f"CAST('{{' || {pairs} || '}}' AS jsonb)"
        return f"json_group_object({key}, {value}) FILTER (WHERE {where})"

    def json_pair(self, key: str, value: str) -> str:
        """A JSON object of one `key` (text) -> `value` (a number), as `json_object`
        writes it."""
        if self.pg:
            return f"jsonb_build_object({key}, {value})"
        return f"json_object({key}, {value})"

    @property
    def empty_json(self) -> str:
        return "'{}'::jsonb" if self.pg else "json('{}')"

    @property
    def distinct_op(self) -> str:
        return "IS DISTINCT FROM" if self.pg else "IS NOT"

    @property
    def force_order(self) -> str:
        """Join keyword that makes SQLite drive the join from the (small) work table."""
        return "JOIN" if self.pg else "CROSS JOIN"

    def tune(self, db: Database) -> None:
        """Settings for the current transaction's aggregation statements."""
        if self.pg:
            # Room to sort in memory (the default 4 MB spills big runs to disk), and sorted
            # grouping: hashed groups holding jsonb_object_agg states spill and ran ~1.5x
            # slower on a million involvements. All last until the transaction ends.
            db.execute_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
            db.execute_sql("SET LOCAL enable_hashagg = off")
            db.execute_sql("SET LOCAL jit = off")  # compiling cost ~1 s and saved less

    @contextmanager
    def session(self, db: Database) -> Iterator[None]:
        """Connection settings for a run. SQLite sorts in memory up to the main
        database's page cache; the default 2 MB spilled the groupings of a big rebuild to
        temporary files (about 1.5x slower), so the cache grows for the run."""
        if self.pg:
            yield
            return
        old = db.execute_sql("PRAGMA cache_size").fetchone()[0]
        db.execute_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        try:
            yield
        finally:
            db.execute_sql(f"PRAGMA cache_size = {int(old)}")

    def create_work_table(self, db: Database) -> None:
        if self.pg:
            db.execute_sql(
                "CREATE TEMP TABLE IF NOT EXISTS stats_work (character_id BIGINT NOT NULL,"
                " period_start DATE NOT NULL, range_end DATE NOT NULL,"
                " PRIMARY KEY (character_id, period_start))"
            )
        else:
            db.execute_sql(
                "CREATE TEMP TABLE IF NOT EXISTS stats_work (character_id INTEGER NOT NULL,"
                " period_start TEXT NOT NULL, range_end TEXT NOT NULL,"
                " PRIMARY KEY (character_id, period_start))"
            )
        db.execute_sql("DELETE FROM stats_work")


_SUMMED = ("n", "kills", "deaths", "destroyed", "lost", "solo", "fb", "npc")
"""The sums each grouping carries (plus `dual` below the per-ship level)."""
_CENTS = ("destroyed", "lost")


def _sum(column: str) -> str:
    """SUM cast back to the column's type: counts stay 32-bit and ISK cents 64-bit, where
    PostgreSQL would widen each level's sum (SUM(bigint) is a slow NUMERIC sum)."""
    return f"CAST(SUM({column}) AS {'BIGINT' if column in _CENTS else 'INTEGER'}) AS {column}"


FIGURES = (
    "kills_count",
    "deaths_count",
    "isk_destroyed",
    "isk_lost",
    "solo_kills",
    "final_blows",
    "npc_deaths",
    "ship_usage",
    "region_activity",
    "character_name",
    "period_end",
)


@dataclass
class _Scan:
    """The involvements a run reads, as `killmails k`: the FROM clause, extra conditions,
    the character and period-start expressions, and the parameters FROM/WHERE use."""

    source: str
    where: str
    character: str
    start: str
    params: list[Any]

    def conditions(self, *more: str) -> str:
        parts = [c for c in (self.where, *more) if c]
        return f"WHERE {' AND '.join(parts)}" if parts else ""


def _grouped_sql(sql: _Sql, scan: _Scan, *, dual: bool = True) -> str:
    """SELECT that groups `scan`'s involvements by character, period, ship and region.

    Columns: character_id, period_start, ship_type_id, region_key and the sums `_SUMMED`,
    `dual` (victim rows of mails on which the character is also an attacker: such a mail
    counts once per region) and `name`. Every figure is additive, so grouping these rows
    again by a longer period gives that period's rows."""
    region_key = "COALESCE(CAST(k.region_id AS TEXT), 'unknown')"
    dual_sum = "0"
    if dual:
        dual_sum = """CAST(SUM(CASE WHEN k.character_role <> 'victim' THEN 0
                    WHEN EXISTS (SELECT 1 FROM killmails a WHERE a.killmail_id = k.killmail_id
                         AND a.related_character_id = k.related_character_id
                         AND a.character_role = 'attacker') THEN 1
                    ELSE 0 END) AS INTEGER)"""
    return f"""
    SELECT {scan.character} AS character_id, {scan.start} AS period_start, k.ship_type_id,
           {region_key} AS region_key, CAST(COUNT(*) AS INTEGER) AS n,
           CAST(SUM(CASE WHEN k.character_role = 'attacker' THEN 1 ELSE 0 END) AS INTEGER)
               AS kills,
           CAST(SUM(CASE WHEN k.character_role = 'victim' THEN 1 ELSE 0 END) AS INTEGER)
               AS deaths,
           CAST(SUM(CASE WHEN k.character_role = 'attacker' THEN {sql.cents} ELSE 0 END)
               AS BIGINT) AS destroyed,
           CAST(SUM(CASE WHEN k.character_role = 'victim' THEN {sql.cents} ELSE 0 END)
               AS BIGINT) AS lost,
           CAST(SUM(CASE WHEN k.character_role = 'attacker' AND k.solo THEN 1 ELSE 0 END)
               AS INTEGER) AS solo,
           CAST(SUM(CASE WHEN k.character_role = 'attacker' AND k.final_blow THEN 1 ELSE 0 END)
               AS INTEGER) AS fb,
           CAST(SUM(CASE WHEN k.character_role = 'victim' AND k.npc THEN 1 ELSE 0 END)
               AS INTEGER) AS npc,
           {dual_sum} AS dual,
           MAX(k.related_character_name) AS name
    FROM {scan.source} {scan.conditions()}
    GROUP BY 1, 2, 3, 4"""


def _dual_roles_sql(sql: _Sql, scan: _Scan) -> str:
    """SELECT: per character, period and region, the mails of `scan` on which the
    character is victim and attacker (an incremental run's `dual`, found by a join: the
    per-row EXISTS of `_grouped_sql` made PostgreSQL's incremental runs ~4x slower)."""
    return f"""
    SELECT {scan.character} AS character_id, {scan.start} AS period_start,
           COALESCE(CAST(k.region_id AS TEXT), 'unknown') AS region_key, COUNT(*) AS n
    FROM {scan.source}
    JOIN killmails a ON a.killmail_id = k.killmail_id
         AND a.related_character_id = k.related_character_id AND a.character_role = 'attacker'
    {scan.conditions("k.character_role = 'victim'")}
    GROUP BY 1, 2, 3"""


_STORED = (
    "period_type, period_start, period_end, character_id, character_name,"
    " kills_count, deaths_count, isk_destroyed, isk_lost, solo_kills, final_blows, npc_deaths,"
    " ship_usage, region_activity, inserted_at, updated_at"
)


def _store_sql(sql: _Sql, ctes: str, select: str, *, anti_join: bool = False) -> str:
    """`WITH ctes INSERT INTO killmail_statistics select ON CONFLICT ...`: `select` gives
    the columns `_STORED`, the last two the two timestamp parameters. Only new rows and
    rows whose figures changed are written.

    `anti_join` (PostgreSQL, for a rebuild offering rows that are mostly stored already)
    leaves rows equal to the stored ones out first: a hashed anti-join costs about half
    of checking each row's conflict. The caller makes sure the table's statistics are
    current and that it holds many rows: planned as a loop over a table believed small,
    the join would rescan it, growing with the statement's inserts, for every row."""
    changed = " OR ".join(
        f"killmail_statistics.{c} {sql.distinct_op} excluded.{c}" for c in FIGURES
    )
    new_only = "true"
    if anti_join:
        unchanged = " AND ".join(
            [f"s.{c} = new.{c}" for c in ("character_id", "period_type", "period_start")]
            + [f"s.{c} IS NOT DISTINCT FROM new.{c}" for c in FIGURES]
        )
        new_only = f"NOT EXISTS (SELECT 1 FROM killmail_statistics s WHERE {unchanged})"
    return f"""
WITH {ctes},
new ({_STORED}) AS ({select})
INSERT INTO killmail_statistics ({_STORED})
SELECT * FROM new
WHERE {new_only}
ON CONFLICT (character_id, period_type, period_start) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in FIGURES)}, updated_at = excluded.updated_at
WHERE {changed}
"""


def _incremental_upsert_sql(sql: _Sql, period_type: str, grouped: str, dual_roles: str) -> str:
    """The statement that stores a period type's figures from `grouped` (a `_grouped_sql`
    SELECT without `dual`, which `dual_roles` gives), followed by the two timestamp
    parameters. Per-ship and per-region sums over the groups (`parts`) make each row's
    figures, ship usage and region activity in one more grouping."""
    ctes = f"""g AS MATERIALIZED ({grouped}),
parts AS (
    SELECT character_id, period_start, 'ship' AS kind, CAST(ship_type_id AS TEXT) AS label,
           {", ".join(_sum(c) for c in _SUMMED)}, MAX(name) AS name
    FROM g GROUP BY character_id, period_start, ship_type_id
    UNION ALL
    SELECT r.character_id, r.period_start, 'region', r.region_key,
           CAST(r.n - COALESCE(d.n, 0) AS INTEGER), 0, 0, 0, 0, 0, 0, 0, NULL
    FROM (SELECT character_id, period_start, region_key, SUM(n) AS n
          FROM g GROUP BY 1, 2, 3) AS r
    LEFT JOIN ({dual_roles}) AS d ON d.character_id = r.character_id
         AND d.period_start = r.period_start AND d.region_key = r.region_key
),
figures AS (
    SELECT character_id, period_start, SUM(kills) AS kills, SUM(deaths) AS deaths,
           SUM(destroyed) AS destroyed, SUM(lost) AS lost, SUM(solo) AS solo,
           SUM(fb) AS fb, SUM(npc) AS npc, MAX(name) AS name,
           {sql.json_object("label", "n", "kind = 'ship' AND label IS NOT NULL")} AS ship_map,
           {sql.json_object("label", "n", "kind = 'region'")} AS activity
    FROM parts GROUP BY 1, 2
)"""
    select = _stored_select(
        sql, period_type, "figures g", f"COALESCE(g.ship_map, {sql.empty_json})", "g.activity"
    )
    return _store_sql(sql, ctes, select)


def _stored_select(sql: _Sql, period_type: str, source: str, ship_usage: str, activity: str) -> str:
    """SELECT of the `_STORED` columns from `source`, whose rows `g` carry character_id,
    period_start, the sums `kills` ... `npc` and `name`; the maps are the expressions
    `ship_usage` and `activity`."""
    end = sql.period_end(period_type, "g.period_start")
    return f"""SELECT '{period_type}', g.period_start, {end},
       g.character_id, COALESCE(t.character_name, g.name),
       g.kills, g.deaths, {sql.isk("g.destroyed")}, {sql.isk("g.lost")}, g.solo, g.fb, g.npc,
       {ship_usage}, {activity}, {sql.p}, {sql.p}
FROM {source}
LEFT JOIN tracked_characters t ON t.character_id = g.character_id"""


def _changes(db: Database, cursor: Any) -> int:
    """Rows the statement changed (Python's sqlite3 reports -1 for `WITH ... INSERT`)."""
    if is_postgres(db):
        return max(cursor.rowcount, 0)
    return int(db.execute_sql("SELECT changes()").fetchone()[0])


def _has_involvements(sql: _Sql, period_type: str) -> str:
    """EXISTS clause: the statistics row's character has involvements in its period."""
    start = "killmail_statistics.period_start"
    return (
        "EXISTS (SELECT 1 FROM killmails k"
        " WHERE k.related_character_id = killmail_statistics.character_id"
        f" AND k.kill_time >= {start} AND k.kill_time < {sql.next_start(period_type, start)})"
    )


# --- state ---------------------------------------------------------------------------


def _watermarks(db: Database) -> dict[str, dt.datetime]:
    return {w.period_type: w.changes_since for w in StatisticsWatermark.select()}


def last_run_started(db: Database) -> dt.datetime | None:
    """When the latest aggregation run (of any period type, by any process) started."""
    value = StatisticsWatermark.select(fn.MAX(StatisticsWatermark.last_run_at)).scalar()
    stamp = StatisticsWatermark.last_run_at.python_value(value) if value is not None else None
    return stamp if isinstance(stamp, dt.datetime) else None


def frozen_before(db: Database) -> dt.date | None:
    """Retention's boundary: periods starting before this day keep their figures."""
    row = StatisticsRetention.get_or_none(StatisticsRetention.id == 1)
    return row.pruned_before if row else None


def absorbed_before(db: Database) -> dt.datetime | None:
    """Every involvement with `processed_at` before this is counted in all three period
    types (None until each type has been aggregated once)."""
    marks = _watermarks(db)
    if not all(p in marks for p in PERIODS):
        return None
    return min(marks[p] for p in PERIODS)


# --- the run -------------------------------------------------------------------------


def aggregate(
    db: Database,
    *,
    periods: Sequence[str] | Iterable[str] = PERIODS,
    since: dt.date | None = None,
    rebuild: bool = False,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    now: dt.datetime | None = None,
    wait: float = 0.0,
) -> AggregateResult:
    """Bring the statistics up to date with the stored involvements.

    Incremental by default; `since` also recomputes every period ending on or after that
    day; `rebuild` recomputes every period (except those retention has partly pruned).
    Holds the statistics job lock (waiting up to `wait` seconds, else `JobBusy`).
    """
    periods = list(dict.fromkeys(periods))
    for period_type in periods:
        if period_type not in PERIODS:
            raise UnknownPeriod(period_type, PERIODS)
    with job_lock(db, STATISTICS_JOB, wait=wait), _Sql(db).session(db):
        boundary = frozen_before(db)
        result = AggregateResult(frozen_before=boundary)
        marks = _watermarks(db)
        rebuilding = [p for p in periods if rebuild or p not in marks]
        shared_start = now or dt.datetime.now(dt.UTC)
        shared_seconds = 0.0
        try:
            if rebuilding:
                # one pass over the involvements for every period type to rebuild
                clock = time.perf_counter()
                _group_days(db, boundary)
                if "daily" in rebuilding:
                    _group_figures_all(db, boundary)
                shared_seconds = time.perf_counter() - clock
            for period_type in periods:
                rebuilt = period_type in rebuilding
                started = shared_start if rebuilt else (now or dt.datetime.now(dt.UTC))
                clock = time.perf_counter()
                part = _aggregate_period(
                    db, period_type, since, rebuilt, boundary, started, overlap
                )
                part.seconds = time.perf_counter() - clock
                if rebuilt:
                    part.seconds += shared_seconds  # the shared pass counts in the first
                    shared_seconds = 0.0
                result.periods.append(part)
                _record_duration(db, period_type, part.seconds)
                log.info(
                    "aggregated %s (%s): %d rows written, %d deleted in %.2fs",
                    period_type,
                    part.mode,
                    part.rows_written,
                    part.rows_deleted,
                    part.seconds,
                )
                if period_type == "daily":
                    log.info(
                        "group days: %d written, %d deleted",
                        part.group_days_written,
                        part.group_days_deleted,
                    )
        finally:
            if rebuilding:
                _drop_rebuild_tables(db)
        _forget_consumed_deletions(db)
        return result


def _aggregate_period(
    db: Database,
    period_type: str,
    since: dt.date | None,
    rebuild: bool,
    boundary: dt.date | None,
    started: dt.datetime,
    overlap: dt.timedelta,
) -> PeriodResult:
    sql = _Sql(db)
    with write_transaction(db):
        sql.tune(db)
        mark = StatisticsWatermark.get_or_none(StatisticsWatermark.period_type == period_type)
        if rebuild:
            part = _rebuild(db, sql, period_type, boundary, started)
        elif mark is None:  # `aggregate` rebuilds every period type without a watermark
            raise RuntimeError(f"no {period_type} watermark for an incremental run")
        else:
            part = _incremental(db, sql, period_type, mark.changes_since, since, boundary, started)
        if period_type == "daily":  # the group's days move with the daily watermark
            changes = None if rebuild or mark is None else mark.changes_since
            _aggregate_group_days(db, sql, part, changes, since, boundary, started)
        changes_since = started - overlap
        if mark is not None and not rebuild:
            changes_since = max(changes_since, mark.changes_since)
        (
            StatisticsWatermark.insert(
                period_type=period_type,
                changes_since=changes_since,
                last_run_at=started,
                last_rebuild_at=started if part.mode == "rebuild" else None,
            )
            .on_conflict(
                conflict_target=[StatisticsWatermark.period_type],
                update={
                    StatisticsWatermark.changes_since: changes_since,
                    StatisticsWatermark.last_run_at: started,
                    **(
                        {StatisticsWatermark.last_rebuild_at: started}
                        if part.mode == "rebuild"
                        else {}
                    ),
                },
            )
            .execute()
        )
        return part


def _record_duration(db: Database, period_type: str, seconds: float) -> None:
    with write_transaction(db):
        StatisticsWatermark.update(last_run_seconds=seconds).where(
            StatisticsWatermark.period_type == period_type
        ).execute()


_FINE = "stats_fine"
"""Temporary table of a rebuild's shared pass: `_grouped_sql` rows per character, day,
ship and region, indexed by character and day."""
_DAYS = "stats_days"
"""Temporary table: `_FINE` grouped by character and day (`_regrouped_sql`)."""
_GROUPS = "stats_groups"
"""Temporary table of a weekly or monthly rebuild: `_DAYS` regrouped by its periods."""


def _full_scan(sql: _Sql, column: str, boundary: dt.date | None) -> tuple[str, str, list[Any]]:
    """A rebuild's read of every involvement from `boundary` on: the table to read, the
    condition `column >= boundary` ("" without a boundary) and its parameters. A full
    scan reads the table in order; SQLite would otherwise walk it through the
    (character, time) index, which is slower for every row."""
    table = "killmails k" if sql.pg else "killmails k NOT INDEXED"
    if boundary is None:
        return table, "", []
    return table, f"{column} >= {sql.p}", [sql.date(boundary)]


def _group_days(db: Database, boundary: dt.date | None) -> None:
    """Group every involvement (from `boundary` on) by character, day, ship and region
    into the temporary table `_FINE`, and that by character and day into `_DAYS`, which
    the weekly and monthly rebuilds regroup.

    A read, outside the write transactions: writers are not held up by it. What they
    commit meanwhile carries a `processed_at` after the run's start minus the overlap,
    so the next incremental run counts it."""
    sql = _Sql(db)
    start = sql.period_start("daily", "k.kill_time")
    table, where, params = _full_scan(sql, start, boundary)
    scan = _Scan(table, where, "k.related_character_id", start, params)
    _drop_rebuild_tables(db)
    with db.atomic():
        sql.tune(db)
        clock = time.perf_counter()
        db.execute_sql(f"CREATE TEMP TABLE {_FINE} AS {_grouped_sql(sql, scan)}", params)
        # periods with several ships or regions read their days' rows from here
        db.execute_sql(f"CREATE INDEX {_FINE}_days ON {_FINE} (character_id, period_start)")
        db.execute_sql(f"CREATE TEMP TABLE {_DAYS} AS {_regrouped_sql(sql, 'daily', _FINE)}")
        if sql.pg:
            db.execute_sql(f"ANALYZE {_FINE}")
            db.execute_sql(f"ANALYZE {_DAYS}")
        log.debug("grouped the involvements by day in %.2fs", time.perf_counter() - clock)


def _drop_rebuild_tables(db: Database) -> None:
    for table in (_GROUPS, _DAYS, _FINE, _GROUP_NEW):
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")


def _regrouped_sql(sql: _Sql, period_type: str, source: str) -> str:
    """SELECT: `source` (`_FINE`, or `_DAYS` for a week or month) grouped by
    `period_type`'s periods: the figures and each period's spans (lowest and highest
    ship and region key, rows without a ship). A period with one ship (or none) and one
    region needs no map built from its parts."""
    start = (
        "period_start" if period_type == "daily" else sql.period_start(period_type, "period_start")
    )
    sums = ", ".join(_sum(c) for c in (*_SUMMED, "dual"))
    if source == _FINE:
        spans = (
            "MIN(ship_type_id) AS ship_lo, MAX(ship_type_id) AS ship_hi,"
            " CAST(SUM(CASE WHEN ship_type_id IS NULL THEN n ELSE 0 END) AS INTEGER) AS shipless,"
            " MIN(region_key) AS region_lo, MAX(region_key) AS region_hi"
        )
    else:
        spans = (
            "MIN(ship_lo) AS ship_lo, MAX(ship_hi) AS ship_hi, "
            + _sum("shipless")
            + ", MIN(region_lo) AS region_lo, MAX(region_hi) AS region_hi"
        )
    return (
        f"SELECT character_id, {start} AS period_start, {sums}, MAX(name) AS name, {spans}"
        f" FROM {source} GROUP BY 1, 2"
    )


def _rebuild_upsert_sql(
    sql: _Sql, period_type: str, groups: str, *, anti_join: bool = False
) -> str:
    """The statement that stores a period type's figures from `groups` (a
    `_regrouped_sql` table), followed by the two timestamp parameters. Maps of periods
    with one ship and one region are written directly; only the other ("mixed") periods
    regroup their `_FINE` rows by ship and by region."""
    one_ship = "g.ship_lo = g.ship_hi AND g.shipless = 0"
    one_region = "g.region_lo = g.region_hi"
    ctes = f"""fine AS (
    SELECT g.character_id, g.period_start, d.ship_type_id, d.region_key, d.n, d.dual
    FROM {groups} g {sql.force_order} {_FINE} d ON d.character_id = g.character_id
         AND d.period_start >= g.period_start
         AND d.period_start < {sql.next_start(period_type, "g.period_start")}
    WHERE NOT ({one_ship} OR g.ship_hi IS NULL) OR NOT {one_region}
),
parts AS (
    SELECT character_id, period_start, 'ship' AS kind, CAST(ship_type_id AS TEXT) AS label,
           CAST(SUM(n) AS INTEGER) AS n
    FROM fine WHERE ship_type_id IS NOT NULL GROUP BY character_id, period_start, ship_type_id
    UNION ALL
    SELECT character_id, period_start, 'region', region_key, CAST(SUM(n) - SUM(dual) AS INTEGER)
    FROM fine GROUP BY character_id, period_start, region_key
),
maps AS (
    SELECT character_id, period_start,
           {sql.json_object("label", "n", "kind = 'ship'")} AS ship_map,
           {sql.json_object("label", "n", "kind = 'region'")} AS activity
    FROM parts GROUP BY 1, 2
)"""
    ship_usage = f"""CASE WHEN g.ship_hi IS NULL THEN {sql.empty_json}
            WHEN {one_ship} THEN {sql.json_pair("CAST(g.ship_lo AS TEXT)", "g.n")}
            ELSE m.ship_map END"""
    activity = f"""CASE WHEN {one_region} THEN {sql.json_pair("g.region_lo", "g.n - g.dual")}
            ELSE m.activity END"""
    source = (
        f"{groups} g LEFT JOIN maps m"
        " ON m.character_id = g.character_id AND m.period_start = g.period_start"
    )
    select = _stored_select(sql, period_type, source, ship_usage, activity)
    return _store_sql(sql, ctes, select, anti_join=anti_join)


def _stored_periods(db: Database, sql: _Sql, period_type: str, keep: str, params: list[Any]) -> int:
    """Statistics rows of `period_type` a rebuild recomputes."""
    return db.execute_sql(
        f"SELECT COUNT(*) FROM killmail_statistics WHERE period_type = {sql.p}{keep}",
        [period_type, *params],
    ).fetchone()[0]


def _rebuild(
    db: Database, sql: _Sql, period_type: str, boundary: dt.date | None, started: dt.datetime
) -> PeriodResult:
    params: list[Any] = []
    keep = ""
    if boundary is not None:
        keep = f" AND period_start >= {sql.p}"
        params.append(sql.date(boundary))
    groups = _DAYS  # its days start on or after the boundary
    if period_type != "daily":
        groups = _GROUPS
        clock = time.perf_counter()
        regrouped = _regrouped_sql(sql, period_type, _DAYS)
        if boundary is not None:  # a week or month that began before it is frozen
            regrouped = f"SELECT * FROM ({regrouped}) AS r WHERE period_start >= {sql.p}"
        db.execute_sql(f"DROP TABLE IF EXISTS {_GROUPS}")
        db.execute_sql(f"CREATE TEMP TABLE {_GROUPS} AS {regrouped}", params)
        if sql.pg:
            db.execute_sql(f"ANALYZE {_GROUPS}")
        log.debug("%s: grouping took %.2fs", period_type, time.perf_counter() - clock)
    grouped = db.execute_sql(f"SELECT COUNT(*) FROM {groups}").fetchone()[0]
    # Mostly stored already (a rebuild over the same data): leave unchanged rows out by
    # an anti-join. Never into a type with few stored rows: the statement's own inserts
    # would make a planned loop over that "small" table quadratic.
    anti_join = sql.pg and 2 * _stored_periods(db, sql, period_type, keep, params) >= grouped
    if anti_join:  # the join is planned from current statistics (ANALYZE samples: fast)
        db.execute_sql("ANALYZE killmail_statistics")
    now = sql.timestamp(started)
    clock = time.perf_counter()
    upsert = _rebuild_upsert_sql(sql, period_type, groups, anti_join=anti_join)
    written = _changes(db, db.execute_sql(upsert, [now, now]))
    log.debug("%s: upsert took %.2fs", period_type, time.perf_counter() - clock)
    if groups == _GROUPS:
        db.execute_sql(f"DROP TABLE {_GROUPS}")
    deleted = 0
    if _stored_periods(db, sql, period_type, keep, params) > grouped:
        # every grouped period now has its row, so some other row lost its involvements
        deleted = db.execute_sql(
            f"DELETE FROM killmail_statistics WHERE period_type = {sql.p}{keep}"
            f" AND NOT {_has_involvements(sql, period_type)}",
            [period_type, *params],
        ).rowcount
    return PeriodResult(period_type, "rebuild", None, max(written, 0), max(deleted, 0))


def _incremental(
    db: Database,
    sql: _Sql,
    period_type: str,
    changes_since: dt.datetime,
    since: dt.date | None,
    boundary: dt.date | None,
    started: dt.datetime,
) -> PeriodResult:
    p = sql.p
    sql.create_work_table(db)
    kill_start = sql.period_start(period_type, "kill_time")
    changed = [
        f"SELECT related_character_id AS character_id, {kill_start} AS period_start"
        f" FROM killmails WHERE processed_at >= {p}",
        f"SELECT character_id, {sql.period_start(period_type, 'day')} AS period_start"
        f" FROM statistics_deletions WHERE marked_at >= {p}",
    ]
    params: list[Any] = [sql.timestamp(changes_since), sql.timestamp(changes_since)]
    if since is not None:
        first = sql.date(period_bounds(period_type, since)[0])
        changed.append(
            f"SELECT related_character_id, {kill_start} FROM killmails WHERE kill_time >= {p}"
        )
        changed.append(
            "SELECT character_id, period_start FROM killmail_statistics"
            f" WHERE period_type = {p} AND period_start >= {p}"
        )
        params += [first, period_type, first]
    where = ""
    if boundary is not None:
        where = f" WHERE period_start >= {p}"
        params.append(sql.date(boundary))
    db.execute_sql(
        "INSERT INTO stats_work (character_id, period_start, range_end)"
        f" SELECT character_id, period_start, {sql.next_start(period_type, 'period_start')}"
        f" FROM ({' UNION '.join(changed)}) AS changed{where}",
        params,
    )
    examined = db.execute_sql("SELECT COUNT(*) FROM stats_work").fetchone()[0]
    if not examined:
        return PeriodResult(period_type, "unchanged", 0)
    if sql.pg:
        db.execute_sql("ANALYZE stats_work")
    scan = _Scan(
        f"stats_work w {sql.force_order} killmails k"
        " ON k.related_character_id = w.character_id"
        " AND k.kill_time >= w.period_start AND k.kill_time < w.range_end",
        "",
        "w.character_id",
        "w.period_start",
        [],
    )
    now = sql.timestamp(started)
    written = _changes(
        db,
        db.execute_sql(
            _incremental_upsert_sql(
                sql, period_type, _grouped_sql(sql, scan, dual=False), _dual_roles_sql(sql, scan)
            ),
            [now, now],
        ),
    )
    deleted = db.execute_sql(
        # driven from the work table: only the examined periods' rows are looked at
        "DELETE FROM killmail_statistics WHERE id IN (SELECT s.id FROM stats_work w"
        f" {sql.force_order} killmail_statistics s ON s.character_id = w.character_id"
        f" AND s.period_type = {p} AND s.period_start = w.period_start"
        " WHERE NOT EXISTS (SELECT 1 FROM killmails k"
        " WHERE k.related_character_id = w.character_id"
        " AND k.kill_time >= w.period_start AND k.kill_time < w.range_end))",
        [period_type],
    ).rowcount
    db.execute_sql("DELETE FROM stats_work")
    return PeriodResult(period_type, "incremental", examined, max(written, 0), max(deleted, 0))


# --- the group's days ----------------------------------------------------------------

GROUP_FIGURES = (
    "kills",
    "deaths",
    "isk_destroyed_cents",
    "isk_lost_cents",
    "solo_kills",
    "final_blows",
    "npc_deaths",
    "attackers_on_kills",
)
"""The `group_days` figures, in the order of `Totals`' fields."""
_GROUP_NEW = "group_new"
"""Temporary table: the group's figures of the days a run recomputes (`group_day_sql`)."""
_GROUP_WORK = "group_work"
"""Temporary table of an incremental run: the days to recompute."""


def group_day_sql(
    sql: ReadSql, source: str, day: str, where: str = "", *, split: str | None = None
) -> str:
    """SELECT: the group's figures per UTC day (`day`, then `GROUP_FIGURES`, then
    `split_mails`) over the involvements of `source` (as `k`) matching `where`, `day` being
    their day. Each mail counts once per role: once as a kill (its value once) whatever
    the number of tracked attackers, once as a loss if a tracked pilot is the victim.

    `split_mails` counts the (mail, role) pairs of the day that also have involvements on
    another day (a mail stored with different kill times; the pipeline never writes one):
    `split="window"` when `source` holds every day's involvements, `"exists"` to look the
    other days up per pair, None for 0."""
    split_sum = "0"
    inner = f"""SELECT {day} AS day, k.killmail_id, k.character_role, MAX({sql.cents}) AS cents,
                 {sql.any_true("k.solo")} AS solo, {sql.any_true("k.final_blow")} AS final_blow,
                 {sql.any_true("k.npc")} AS npc, MAX(k.attacker_count) AS attacker_count
          FROM {source} {("WHERE " + where) if where else ""}
          GROUP BY k.killmail_id, k.character_role, 1"""
    if split == "window":
        inner = (
            "SELECT w.*, COUNT(*) OVER (PARTITION BY w.killmail_id, w.character_role) AS spread"
            f" FROM ({inner}) AS w"
        )
        split_sum = "SUM(CASE WHEN m.spread > 1 THEN 1 ELSE 0 END)"
    elif split == "exists":
        following = "(m.day + 1)" if sql.pg else "date(m.day, '+1 day')"
        # SQLite: `+` keeps it off the (role, time) index, on to the mail's rows
        role = "o.character_role" if sql.pg else "+o.character_role"
        split_sum = f"""SUM(CASE WHEN EXISTS (SELECT 1 FROM killmails o
                    WHERE o.killmail_id = m.killmail_id AND {role} = m.character_role
                    AND (o.kill_time < m.day OR o.kill_time >= {following})) THEN 1 ELSE 0 END)"""
    return f"""
    SELECT m.day,
           CAST(SUM(CASE WHEN m.character_role = 'attacker' THEN 1 ELSE 0 END) AS INTEGER)
               AS kills,
           CAST(SUM(CASE WHEN m.character_role = 'victim' THEN 1 ELSE 0 END) AS INTEGER)
               AS deaths,
           CAST(SUM(CASE WHEN m.character_role = 'attacker' THEN m.cents ELSE 0 END) AS BIGINT)
               AS isk_destroyed_cents,
           CAST(SUM(CASE WHEN m.character_role = 'victim' THEN m.cents ELSE 0 END) AS BIGINT)
               AS isk_lost_cents,
           CAST(SUM(CASE WHEN m.character_role = 'attacker' AND m.solo THEN 1 ELSE 0 END)
               AS INTEGER) AS solo_kills,
           CAST(SUM(CASE WHEN m.character_role = 'attacker' AND m.final_blow THEN 1 ELSE 0 END)
               AS INTEGER) AS final_blows,
           CAST(SUM(CASE WHEN m.character_role = 'victim' AND m.npc THEN 1 ELSE 0 END)
               AS INTEGER) AS npc_deaths,
           CAST(SUM(CASE WHEN m.character_role = 'attacker' THEN m.attacker_count ELSE 0 END)
               AS BIGINT) AS attackers_on_kills,
           CAST({split_sum} AS INTEGER) AS split_mails
    FROM ({inner}) AS m
    GROUP BY m.day"""


def days_join(sql: ReadSql, days: str) -> str:
    """FROM clause: the rows `d` of `days` (a table with a `day` column), each joined to
    its day's involvements `k`, found through the (role, kill_time) index."""
    force = "JOIN" if sql.pg else "CROSS JOIN"
    following = "(d.day + 1)" if sql.pg else "date(d.day, '+1 day')"
    return (
        f"{days} d {force} killmails k ON k.character_role IN ('attacker', 'victim')"
        f" AND k.kill_time >= d.day AND k.kill_time < {following}"
    )


def _group_figures_all(db: Database, boundary: dt.date | None) -> None:
    """A rebuild's read of the group's figures for every day from `boundary` on into
    `_GROUP_NEW` (outside the write transactions, like `_group_days`)."""
    sql = _Sql(db)
    day = sql.period_start("daily", "k.kill_time")
    table, where, params = _full_scan(sql, "k.kill_time", boundary)
    db.execute_sql(f"DROP TABLE IF EXISTS {_GROUP_NEW}")
    with db.atomic():
        sql.tune(db)
        select = group_day_sql(sql, table, day, where, split="window")
        db.execute_sql(f"CREATE TEMP TABLE {_GROUP_NEW} AS {select}", params)


def _group_work(
    db: Database,
    sql: _Sql,
    changes_since: dt.datetime,
    since: dt.date | None,
    boundary: dt.date | None,
) -> int:
    """Fill `_GROUP_WORK` with the days an incremental run recomputes (an involvement
    written, changed or deleted since `changes_since`; every day from `since` on) and
    `_GROUP_NEW` with their figures; returns the number of days."""
    p = sql.p
    day = sql.period_start("daily", "kill_time")
    changed = [
        f"SELECT {day} AS day FROM killmails WHERE processed_at >= {p}",
        f"SELECT day FROM statistics_deletions WHERE marked_at >= {p}",
    ]
    params: list[Any] = [sql.timestamp(changes_since), sql.timestamp(changes_since)]
    if since is not None:
        changed.append(f"SELECT {day} FROM killmails WHERE kill_time >= {p}")
        changed.append(f"SELECT day FROM group_days WHERE day >= {p}")
        params += [sql.date(since), sql.date(since)]
    where = ""
    if boundary is not None:
        where = f" WHERE day >= {p}"
        params.append(sql.date(boundary))
    kind = "DATE" if sql.pg else "TEXT"
    db.execute_sql(f"CREATE TEMP TABLE IF NOT EXISTS {_GROUP_WORK} (day {kind} PRIMARY KEY)")
    db.execute_sql(f"DELETE FROM {_GROUP_WORK}")
    db.execute_sql(
        f"INSERT INTO {_GROUP_WORK} (day) SELECT day FROM ({' UNION '.join(changed)}) AS c{where}",
        params,
    )
    examined = int(db.execute_sql(f"SELECT COUNT(*) FROM {_GROUP_WORK}").fetchone()[0])
    db.execute_sql(f"DROP TABLE IF EXISTS {_GROUP_NEW}")
    if examined:
        if sql.pg:
            db.execute_sql(f"ANALYZE {_GROUP_WORK}")
        source = days_join(sql, _GROUP_WORK)
        db.execute_sql(
            f"CREATE TEMP TABLE {_GROUP_NEW} AS"
            f" {group_day_sql(sql, source, 'd.day', split='exists')}"
        )
    return examined


def _aggregate_group_days(
    db: Database,
    sql: _Sql,
    part: PeriodResult,
    changes_since: dt.datetime | None,
    since: dt.date | None,
    boundary: dt.date | None,
    started: dt.datetime,
) -> None:
    """Store the group's figures (`group_days`): after a rebuild (`changes_since` None)
    every day from `boundary` on, from `_GROUP_NEW`; else the days with changes since
    `changes_since`. Days before `boundary` keep their figures, like frozen periods."""
    p = sql.p
    if changes_since is None:
        scope, params = "", []
        if boundary is not None:
            scope, params = f"day >= {p} AND ", [sql.date(boundary)]
    else:
        if not _group_work(db, sql, changes_since, since, boundary):
            return
        scope, params = f"day IN (SELECT day FROM {_GROUP_WORK}) AND ", []
    stored = (*GROUP_FIGURES, "split_mails")
    columns = ", ".join(stored)
    changed = " OR ".join(f"group_days.{c} {sql.distinct_op} excluded.{c}" for c in stored)
    cursor = db.execute_sql(
        f"INSERT INTO group_days (day, {columns}, updated_at)"
        f" SELECT day, {columns}, {p} FROM {_GROUP_NEW} WHERE true"
        " ON CONFLICT (day) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*stored, "updated_at"))
        + f" WHERE {changed}",
        [sql.timestamp(started)],
    )
    part.group_days_written = _changes(db, cursor)
    deleted = db.execute_sql(
        f"DELETE FROM group_days WHERE {scope}day NOT IN (SELECT day FROM {_GROUP_NEW})",
        params,
    ).rowcount
    part.group_days_deleted = max(deleted, 0)
    db.execute_sql(f"DROP TABLE {_GROUP_NEW}")


def _forget_consumed_deletions(db: Database) -> None:
    """Deletion marks every period type has read are no longer needed."""
    absorbed = absorbed_before(db)
    if absorbed is not None:
        with write_transaction(db):
            StatisticsDeletion.delete().where(StatisticsDeletion.marked_at < absorbed).execute()
