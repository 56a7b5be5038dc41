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
    """`WITH` clause defining `days`: the group's figures per day within `start`..`end`
    (columns `_DAY_COLUMNS`), with its parameters. None before the first daily
    aggregation (then everything is computed live).

    Stored days where current; the days changed since the daily watermark computed live.
    Should a mail with involvements on several days of the range be in play (never
    written by the pipeline: one mail, one kill time), summing days would count it
    twice, so then every day from the retention boundary on is computed live. Days
    before the boundary always keep their stored figures."""
    changes_since, frozen = db.execute_sql(
        "SELECT (SELECT changes_since FROM statistics_watermarks WHERE period_type = 'daily'),"
        " (SELECT pruned_before FROM statistics_retention WHERE id = 1)"
    ).fetchone()
    if changes_since is None:
        return None
    p = sql.p
    stamp = sql.timestamp(as_datetime(changes_since))
    boundary = as_date(frozen) if frozen is not None else None
    live_from = max(d for d in (start, boundary) if d) if (start or boundary) else None
    in_range, range_params = _day_conditions(sql, start, end)
    live_days, live_params = _day_conditions(sql, live_from, end)
    day = sql.period_start("daily", "kill_time")

    # a mail with a changed involvement and involvements of one role on several days of
    # the range: the changed mails first, then their rows grouped per mail and role (not
    # joined row to row: a fleet kill has hundreds of rows)
    span_params: list[Any] = []
    spans = time_conditions(sql, live_from, end, span_params, "o.kill_time")
    o_day = sql.period_start("daily", "o.kill_time")
    force = "JOIN" if sql.pg else "CROSS JOIN"  # SQLite: from the few changed mails
    stored_split, changed_split_found = db.execute_sql(
        # de-duplicated from a materialized list: SQLite would otherwise walk the whole
        # unique index for a DISTINCT instead of the processed_at one
        "WITH changed AS MATERIALIZED"
        f" (SELECT killmail_id FROM killmails WHERE processed_at >= {p}),"
        " mails AS MATERIALIZED (SELECT DISTINCT killmail_id FROM changed)"
        f" SELECT (SELECT COALESCE(SUM(split_mails), 0) FROM group_days{_where(live_days)}),"
        f" (SELECT COUNT(*) FROM (SELECT 1 FROM mails c {force} killmails o"
        f" ON o.killmail_id = c.killmail_id{_where(spans)}"
        f" GROUP BY o.killmail_id, o.character_role HAVING MIN({o_day}) <> MAX({o_day})) AS s)",
        [stamp, *live_params, *span_params],
    ).fetchone()

    if stored_split or changed_split_found:
        params: list[Any] = []
        frozen_part = ""
        if boundary is not None:
            kept, kept_params = _day_conditions(sql, start, end)
            frozen_part = (
                f"SELECT {_DAY_COLUMNS} FROM group_days{_where([*kept, f'day < {p}'])} UNION ALL "
            )
            params += [*kept_params, sql.date(boundary)]
        live_where = time_conditions(sql, live_from, end, params)
        clause = f"""WITH days ({_DAY_COLUMNS}) AS (
    {frozen_part}SELECT {sql.period_start("daily", "k.kill_time")},
           {TOTALS_COLUMNS.format(cents="k.cents")}
    FROM ({_per_mail(sql, live_where)}) k GROUP BY 1
)"""
        return clause, params

    clause = f"""WITH dirty AS (
    SELECT day FROM (
        SELECT {day} AS day FROM killmails WHERE processed_at >= {p}
        UNION SELECT day FROM statistics_deletions WHERE marked_at >= {p}) AS changed
    {_where(live_days)}
),
days ({_DAY_COLUMNS}) AS (
    SELECT {_DAY_COLUMNS} FROM group_days
    {_where([*in_range, "day NOT IN (SELECT day FROM dirty)"])}
    UNION ALL
    SELECT {_DAY_COLUMNS} FROM ({group_day_sql(sql, days_join(sql, "dirty"), "d.day")}) AS t
)"""
    return clause, [stamp, stamp, *live_params, *range_params]


def _day_conditions(
    sql: ReadSql, start: dt.date | None, end: dt.date | None
) -> tuple[list[str], list[Any]]:
    """Conditions on a `day` column: within `start`..`end` (inclusive, either open)."""
    where, params = [], []
    if start is not None:
        where.append(f"day >= {sql.p}")
        params.append(sql.date(start))
    if end is not None:
        where.append(f"day <= {sql.p}")
        params.append(sql.date(end))
    return where, params


def _where(conditions: list[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


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
