"""The tracked group as one side: every stored mail counted once per side, whatever the
number of tracked pilots on it. Five tracked attackers on one kill make one kill and its
ISK once; a mail with tracked pilots on both sides is one kill and one loss.

The de-duplication happens in SQL (one row per mail and role in a subquery), never in
Python.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import Database

from .aggregation import period_bounds
from .history import TOTALS_COLUMNS, check_period, check_range, time_conditions, totals_from_row
from .sqltext import ReadSql, as_date


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


def group_totals(
    db: Database, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, Any]:
    """The group's figures over the stored involvements within the days (all if None)."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = []
    where = time_conditions(sql, start, end, params)
    row = db.execute_sql(
        f"SELECT {TOTALS_COLUMNS.format(cents='k.cents')} FROM ({_per_mail(sql, where)}) k",
        params,
    ).fetchone()
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
    params: list[Any] = []
    where = time_conditions(sql, start, end, params)
    rows = db.execute_sql(
        f"SELECT {sql.period_start(period, 'k.kill_time')} AS period_start, "
        f"{TOTALS_COLUMNS.format(cents='k.cents')} FROM ({_per_mail(sql, where)}) k "
        "GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    out = []
    for row in rows:
        first = as_date(row[0])
        figures = totals_from_row(row[1:]).as_dict()
        out.append(
            {"period_start": first, "period_end": period_bounds(period, first)[1], **figures}
        )
    return out
