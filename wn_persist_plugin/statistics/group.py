"""The tracked group as one side: every stored mail counted once per side, whatever the
number of tracked pilots on it. Five tracked attackers on one kill make one kill and its
ISK once; a mail with tracked pilots on both sides is one kill and one loss.

The figures are stored per UTC day (`group_days`, written by the daily aggregation) and
summed from there in SQL. Days with involvements written, changed or deleted since the
daily watermark are de-duplicated live instead (one row per mail and role in a subquery,
never in Python), so the answer always equals the live computation over the stored
involvements; days before the retention boundary keep their stored figures, like frozen
statistics periods. Before the first daily aggregation everything is computed live
(`live_group_totals`, `live_group_stats`: also the reference the tests compare with).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import Database

from .aggregation import days_join, group_day_sql, period_bounds
from .history import TOTALS_COLUMNS, check_period, check_range, time_conditions, totals_from_row
from .sqltext import ReadSql, as_date, as_datetime

DAY_TOTALS_COLUMNS = """
    CAST(COALESCE(SUM(d.kills), 0) AS INTEGER),
    CAST(COALESCE(SUM(d.deaths), 0) AS INTEGER),
    COALESCE(SUM(d.isk_destroyed_cents), 0),
    COALESCE(SUM(d.isk_lost_cents), 0),
    CAST(COALESCE(SUM(d.solo_kills), 0) AS INTEGER),
    CAST(COALESCE(SUM(d.final_blows), 0) AS INTEGER),
    CAST(COALESCE(SUM(d.npc_deaths), 0) AS INTEGER),
    COALESCE(SUM(d.attackers_on_kills), 0)
"""
"""The eight `Totals` figures summed over group day rows `d`, in field order."""

_DAY_COLUMNS = (
    "day, kills, deaths, isk_destroyed_cents, isk_lost_cents, solo_kills, final_blows, "
    "npc_deaths, attackers_on_kills"
)


def _per_mail(sql: ReadSql, where: list[str]) -> str:
    """One row per (mail, role) of the stored involvements, with the columns the totals
    read."""
    return f"""
    SELECT k.killmail_id, k.character_role, MIN(k.kill_time) AS kill_time,
           MAX({sql.cents}) AS cents, {sql.any_true("k.solo")} AS solo,
           {sql.any_true("k.final_blow")} AS final_blow, {sql.any_true("k.npc")} AS npc,
           MAX(k.attacker_count) AS attacker_count
    FROM killmails k {("WHERE " + " AND ".join(where)) if where else ""}
    GROUP BY k.killmail_id, k.character_role"""


def live_group_totals(
    db: Database, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, Any]:
    """`group_totals` de-duplicated live over every stored involvement in the days."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = []
    where = time_conditions(sql, start, end, params)
    row = db.execute_sql(
        f"SELECT {TOTALS_COLUMNS.format(cents='k.cents')} FROM ({_per_mail(sql, where)}) k",
        params,
    ).fetchone()
    return totals_from_row(row).as_dict()


def live_group_stats(
    db: Database,
    period: str = "monthly",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[dict[str, Any]]:
    """`group_stats` de-duplicated live over every stored involvement in the days."""
    check_period(period)
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = []
    where = time_conditions(sql, start, end, params)
    rows = db.execute_sql(
        f"SELECT {sql.period_start(period, 'k.kill_time')} AS period_start, "
        f"{TOTALS_COLUMNS.format(cents='k.cents')} FROM ({_per_mail(sql, where)}) k "
        "GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    return [_period_row(period, row) for row in rows]


def _period_row(period: str, row: tuple[Any, ...]) -> dict[str, Any]:
    first = as_date(row[0])
    figures = totals_from_row(row[1:]).as_dict()
    return {"period_start": first, "period_end": period_bounds(period, first)[1], **figures}


def _stored_days(
    db: Database, sql: ReadSql, start: dt.date | None, end: dt.date | None
) -> tuple[str, list[Any]] | None:
    """`WITH` clause defining `days`: the group's figures per day within `start`..`end`,
    stored ones where current and live ones for the days changed since the daily
    watermark; with its parameters. None before the first daily aggregation."""
    changes_since, frozen = db.execute_sql(
        "SELECT (SELECT changes_since FROM statistics_watermarks WHERE period_type = 'daily'),"
        " (SELECT pruned_before FROM statistics_retention WHERE id = 1)"
    ).fetchone()
    if changes_since is None:
        return None
    p = sql.p
    bounds: list[str] = []
    bound_params: list[Any] = []
    for column_op, value in ((">=", start), ("<=", end)):
        if value is not None:
            bounds.append(f"day {column_op} {p}")
            bound_params.append(sql.date(value))
    dirty_bounds, dirty_params = list(bounds), list(bound_params)
    if frozen is not None:  # days before the retention boundary keep their figures
        dirty_bounds.append(f"day >= {p}")
        dirty_params.append(sql.date(as_date(frozen)))
    day = sql.period_start("daily", "kill_time")
    stamp = sql.timestamp(as_datetime(changes_since))
    within = (" AND " + " AND ".join(bounds)) if bounds else ""
    clause = f"""WITH dirty AS (
    SELECT day FROM (
        SELECT {day} AS day FROM killmails WHERE processed_at >= {p}
        UNION SELECT day FROM statistics_deletions WHERE marked_at >= {p}) AS changed
    {("WHERE " + " AND ".join(dirty_bounds)) if dirty_bounds else ""}
),
days AS (
    SELECT {_DAY_COLUMNS} FROM group_days
    WHERE day NOT IN (SELECT day FROM dirty){within}
    UNION ALL
    {group_day_sql(sql, days_join(sql, "dirty"), "d.day")}
)"""
    return clause, [stamp, stamp, *dirty_params, *bound_params]


def group_totals(
    db: Database, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, Any]:
    """The group's figures over the stored involvements within the days (all if None)."""
    check_range(start, end)
    sql = ReadSql(db)
    stored = _stored_days(db, sql, start, end)
    if stored is None:
        return live_group_totals(db, start, end)
    clause, params = stored
    row = db.execute_sql(f"{clause} SELECT {DAY_TOTALS_COLUMNS} FROM days d", params).fetchone()
    return totals_from_row(row).as_dict()


def group_stats(
    db: Database,
    period: str = "monthly",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[dict[str, Any]]:
    """One object per period of that type with group activity in the days, oldest first:
    `period_start`, `period_end` and the totals (mails counted once per side)."""
    check_period(period)
    check_range(start, end)
    sql = ReadSql(db)
    stored = _stored_days(db, sql, start, end)
    if stored is None:
        return live_group_stats(db, period, start, end)
    clause, params = stored
    rows = db.execute_sql(
        f"{clause} SELECT {sql.period_start(period, 'd.day')} AS period_start, "
        f"{DAY_TOTALS_COLUMNS} FROM days d GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    return [_period_row(period, row) for row in rows]
