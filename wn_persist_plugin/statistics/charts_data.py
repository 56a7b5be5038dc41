"""The figures the charts and the reports draw: most used ships and most active regions
from the stored statistics, the group's weekday x hour activity, names for ids, and the
most expensive kill of a range.

Like `history`, every function takes the (bound) database and returns plain values; bad
arguments raise `InvalidParameter` naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from typing import Any

from peewee import Database

from ..db.fields import to_isk
from ..errors import InvalidParameter
from .history import (
    ZKILLBOARD_KILL_URL,
    check_period,
    check_range,
    lookup_names,
    period_overlap,
    time_conditions,
    weekday_hour_grid,
)
from .sqltext import ReadSql, as_datetime

TOP_KINDS = ("ships", "regions")
_COLUMN = {"ships": "s.ship_usage", "regions": "s.region_activity"}


def _first(cursor: Any) -> Any:
    """The first row, reading the cursor to its end: a SQLite statement left open keeps a
    read transaction that makes a later write on the same connection fail."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _mapping(value: Any) -> dict[str, Any]:
    found = json.loads(value) if isinstance(value, str) else value
    return found if isinstance(found, dict) else {}


def top_entities(
    db: Database,
    kind: str,
    character_id: int | None = None,
    period: str = "monthly",
    start: dt.date | None = None,
    end: dt.date | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Most used ships (`kind="ships"`) or most active regions (`"regions"`) of one
    character, or of every tracked character together (None), summed over the stored
    statistics periods of type `period` that overlap the days `start`..`end` (the periods
    `/characters/{id}/stats` lists). Items: `id` (None for an unknown region), `name`
    (the id as text when no name is known) and `count`; most first, then by id."""
    if kind not in TOP_KINDS:
        raise InvalidParameter("kind", f"{kind!r} is not one of {', '.join(TOP_KINDS)}")
    check_period(period)
    check_range(start, end)
    if not 1 <= limit <= 100:
        raise InvalidParameter("limit", f"{limit} is out of range (1..100)")
    sql = ReadSql(db)
    params: list[Any] = [period]
    where = [f"s.period_type = {sql.p}"]
    if character_id is not None:
        where.append(f"s.character_id = {sql.p}")
        params.append(character_id)
    where += period_overlap(sql, start, end, params)
    totals: Counter[str] = Counter()
    cursor = db.execute_sql(
        f"SELECT {_COLUMN[kind]} FROM killmail_statistics s WHERE {' AND '.join(where)}", params
    )
    for (value,) in cursor:
        for key, count in _mapping(value).items():
            totals[str(key)] += int(count)
    ranked = sorted(
        ((key, count) for key, count in totals.items() if count > 0),
        key=lambda item: (-item[1], item[0]),
    )[:limit]
    keys = {key for key, _ in ranked}
    names = lookup_names(
        db, keys if kind == "ships" else set(), keys if kind == "regions" else set()
    )
    out = []
    for key, count in ranked:
        entity_id = int(key) if key.isdigit() else None
        name = names[kind].get(key) or (key if entity_id is not None else "unknown")
        out.append({"id": entity_id, "name": name, "count": count})
    return out


def character_name(db: Database, character_id: int) -> str:
    """The character's name: tracked list, then statistics, then involvements; the id as
    text when none is stored."""
    p = db.param
    for query in (
        f"SELECT character_name FROM tracked_characters WHERE character_id = {p}",
        f"SELECT MAX(character_name) FROM killmail_statistics WHERE character_id = {p}",
        f"SELECT MAX(related_character_name) FROM killmails WHERE related_character_id = {p}",
    ):
        row = _first(db.execute_sql(query, (character_id,)))
        if row is not None and row[0]:
            return str(row[0])
    return str(character_id)


def group_activity(
    db: Database, start: dt.date | None = None, end: dt.date | None = None
) -> list[list[int]]:
    """The group's mails per UTC weekday (rows, Monday first) and hour (columns 0..23),
    each mail counted once whatever the number of tracked pilots on it."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = []
    where = time_conditions(sql, start, end, params)
    return weekday_hour_grid(db, sql, where, params, "COUNT(DISTINCT k.killmail_id)")


def most_expensive_kill(
    db: Database, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, Any] | None:
    """The group's most valuable kill within the days (a mail with a tracked attacker):
    `killmail_id`, `kill_time`, `total_value`, the victim's `ship` name, `system`, and
    `zkillboard_url`; None when the range has no kill. Ties: the earlier mail."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = []
    where = ["k.character_role = 'attacker'", "k.total_value IS NOT NULL",
             *time_conditions(sql, start, end, params)]  # fmt: skip
    row = _first(
        db.execute_sql(
            "SELECT k.killmail_id, k.kill_time, k.total_value, k.solar_system_name "
            f"FROM killmails k WHERE {' AND '.join(where)} "
            f"ORDER BY {sql.number('k.total_value')} DESC, k.kill_time, k.killmail_id LIMIT 1",
            params,
        )
    )
    if row is None:
        return None
    killmail_id, when, value, system = row
    victim = _first(
        db.execute_sql(
            f"SELECT victim_data FROM killmails WHERE killmail_id = {sql.p} "
            "AND victim_data IS NOT NULL LIMIT 1",
            (killmail_id,),
        )
    )
    ship_id = _mapping(victim[0]).get("ship_type_id") if victim else None
    ship = None
    if ship_id is not None:
        ship = lookup_names(db, {str(ship_id)}, set())["ships"].get(str(ship_id)) or str(ship_id)
    return {
        "killmail_id": int(killmail_id),
        "kill_time": as_datetime(when),
        "total_value": to_isk(str(value)) or Decimal("0.00"),
        "ship": ship,
        "system": system,
        "zkillboard_url": ZKILLBOARD_KILL_URL.format(int(killmail_id)),
    }
