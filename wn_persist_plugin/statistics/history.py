"""Reading a character's history: the tracked list, profiles with all-time totals,
keyset-paginated killmail pages, weekday x hour activity, one stored mail, the stored
statistics periods and leaderboards.

Every function takes the (bound) database and returns plain values (ints, `Decimal` ISK,
aware UTC datetimes, dates); the HTTP API and the CLI format them. Bad arguments raise
`InvalidParameter` naming the parameter; unknown ids raise `UnknownCharacter` /
`UnknownKillmail`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from peewee import Database

from ..db.fields import to_isk
from ..db.models import ROLE_ATTACKER, ROLE_VICTIM
from ..errors import InvalidParameter, UnknownCharacter, UnknownKillmail
from .aggregation import PERIODS, period_bounds
from .sqltext import ReadSql, as_date, as_datetime, day_start, isk_from_cents

ROLES = (ROLE_ATTACKER, ROLE_VICTIM)
RANKINGS = (
    "kills",
    "deaths",
    "isk_destroyed",
    "isk_lost",
    "solo_kills",
    "final_blows",
    "efficiency",
)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TOP_ENTRIES = 3
"""Ships and regions listed per statistics period."""
ZKILLBOARD_KILL_URL = "https://zkillboard.com/kill/{}/"


def check_period(period: str, parameter: str = "period") -> str:
    if period not in PERIODS:
        raise InvalidParameter(parameter, f"{period!r} is not one of {', '.join(PERIODS)}")
    return period


def check_range(start: dt.date | None, end: dt.date | None) -> None:
    """`from` and `to` are inclusive days; `from` may not be after `to`."""
    if start is not None and end is not None and start > end:
        raise InvalidParameter("from", f"{start.isoformat()} is after to ({end.isoformat()})")


def _percent(part: float | Decimal, whole: float | Decimal) -> float | None:
    if not whole:
        return None
    return round(float(Decimal(part) * 100 / Decimal(whole)), 2)


@dataclass(frozen=True)
class Totals:
    """Summed figures. Ratios follow zKillboard: `efficiency` = ISK destroyed / (destroyed
    + lost), `danger_ratio` = kills / (kills + deaths), `gang_ratio` = 100 - solo kills /
    kills, all in percent (None when undefined)."""

    kills: int = 0
    deaths: int = 0
    isk_destroyed: Decimal = Decimal("0.00")
    isk_lost: Decimal = Decimal("0.00")
    solo_kills: int = 0
    final_blows: int = 0
    npc_deaths: int = 0
    attackers_on_kills: int = 0

    @property
    def efficiency(self) -> float | None:
        return _percent(self.isk_destroyed, self.isk_destroyed + self.isk_lost)

    @property
    def danger_ratio(self) -> float | None:
        return _percent(self.kills, self.kills + self.deaths)

    @property
    def gang_ratio(self) -> float | None:
        solo = _percent(self.solo_kills, self.kills)
        return None if solo is None else round(100 - solo, 2)

    @property
    def average_attackers(self) -> float | None:
        return round(self.attackers_on_kills / self.kills, 2) if self.kills else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["attackers_on_kills"]
        out.update(
            efficiency=self.efficiency,
            danger_ratio=self.danger_ratio,
            gang_ratio=self.gang_ratio,
            average_attackers=self.average_attackers,
        )
        return out


TOTALS_COLUMNS = """
    CAST(COALESCE(SUM(CASE WHEN k.character_role = 'attacker' THEN 1 ELSE 0 END), 0) AS INTEGER),
    CAST(COALESCE(SUM(CASE WHEN k.character_role = 'victim' THEN 1 ELSE 0 END), 0) AS INTEGER),
    COALESCE(SUM(CASE WHEN k.character_role = 'attacker' THEN {cents} ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN k.character_role = 'victim' THEN {cents} ELSE 0 END), 0),
    CAST(COALESCE(SUM(CASE WHEN k.character_role = 'attacker' AND k.solo THEN 1 ELSE 0 END), 0)
         AS INTEGER),
    CAST(COALESCE(SUM(CASE WHEN k.character_role = 'attacker' AND k.final_blow THEN 1 ELSE 0
         END), 0) AS INTEGER),
    CAST(COALESCE(SUM(CASE WHEN k.character_role = 'victim' AND k.npc THEN 1 ELSE 0 END), 0)
         AS INTEGER),
    COALESCE(SUM(CASE WHEN k.character_role = 'attacker' THEN k.attacker_count ELSE 0 END), 0)
"""
"""The eight `Totals` figures over rows `k` (ISK as cents), in field order."""


def totals_from_row(row: Iterable[Any]) -> Totals:
    kills, deaths, destroyed, lost, solo, fb, npc, attackers = row
    return Totals(
        int(kills),
        int(deaths),
        isk_from_cents(destroyed),
        isk_from_cents(lost),
        int(solo),
        int(fb),
        int(npc),
        int(attackers),
    )


def time_conditions(
    sql: ReadSql,
    start: dt.date | None,
    end: dt.date | None,
    params: list[Any],
    column: str = "k.kill_time",
) -> list[str]:
    """`column` (a time) within the inclusive days `start`..`end`, either open (appends
    the parameters)."""
    where = []
    if start is not None:
        where.append(f"{column} >= {sql.p}")
        params.append(sql.timestamp(day_start(start)))
    if end is not None:
        where.append(f"{column} < {sql.p}")
        params.append(sql.timestamp(day_start(end + dt.timedelta(days=1))))
    return where


def character_totals(
    db: Database,
    character_id: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Totals:
    """The character's figures over its stored involvements (within the days, if given)."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = [character_id]
    where = ["k.related_character_id = " + sql.p, *time_conditions(sql, start, end, params)]
    query = (
        f"SELECT {TOTALS_COLUMNS.format(cents=sql.cents)} FROM killmails k "
        f"WHERE {' AND '.join(where)}"
    )
    return totals_from_row(db.execute_sql(query, params).fetchone())


# --- characters --------------------------------------------------------------------------


def _entity(entity_id: Any, name: Any, ticker: Any = None) -> dict[str, Any] | None:
    if entity_id is None:
        return None
    out: dict[str, Any] = {"id": int(entity_id), "name": name}
    if ticker is not None:
        out["ticker"] = ticker
    return out


_CHARACTER_SQL = """
SELECT t.character_id, t.character_name, t.corporation_id, t.corporation_name,
       t.corporation_ticker, t.alliance_id, t.alliance_name, t.alliance_ticker,
       t.tracked, t.tracked_since,
       (SELECT MIN(k.kill_time) FROM killmails k WHERE k.related_character_id = t.character_id),
       (SELECT MAX(k.kill_time) FROM killmails k WHERE k.related_character_id = t.character_id),
       (SELECT COALESCE(SUM(s.kills_count), 0) FROM killmail_statistics s
        WHERE s.character_id = t.character_id AND s.period_type = 'monthly'),
       (SELECT COALESCE(SUM(s.deaths_count), 0) FROM killmail_statistics s
        WHERE s.character_id = t.character_id AND s.period_type = 'monthly')
FROM tracked_characters t
"""


def _character(row: tuple[Any, ...]) -> dict[str, Any]:
    (cid, name, corp, corp_name, corp_ticker, ally, ally_name, ally_ticker, tracked, since,
     first, last, kills, deaths) = row  # fmt: skip
    return {
        "id": int(cid),
        "name": name,
        "corporation": _entity(corp, corp_name, corp_ticker),
        "alliance": _entity(ally, ally_name, ally_ticker),
        "tracked": bool(tracked),
        "tracked_since": as_datetime(since) if since is not None else None,
        "first_involvement": as_datetime(first) if first is not None else None,
        "last_involvement": as_datetime(last) if last is not None else None,
        "kills": int(kills),
        "deaths": int(deaths),
    }


def list_characters(db: Database) -> list[dict[str, Any]]:
    """Tracked characters with their first and last stored involvement and their kill and
    death counts (from the monthly statistics), by name."""
    rows = db.execute_sql(
        _CHARACTER_SQL + " WHERE t.tracked ORDER BY LOWER(t.character_name), t.character_id"
    ).fetchall()
    return [_character(row) for row in rows]


def require_character(db: Database, character_id: int) -> None:
    """Raise `UnknownCharacter` unless the id is (or was) tracked or has involvements."""
    p = db.param
    found = db.execute_sql(
        f"SELECT 1 FROM tracked_characters WHERE character_id = {p} UNION ALL "
        f"SELECT 1 FROM (SELECT 1 AS x FROM killmails WHERE related_character_id = {p} "
        "LIMIT 1) AS one",
        (character_id, character_id),
    ).fetchone()
    if found is None:
        raise UnknownCharacter(str(character_id))


def character_profile(db: Database, character_id: int) -> dict[str, Any]:
    """Profile (names, corporation, alliance, first and last involvement) plus all-time
    totals over the stored involvements."""
    sql = ReadSql(db)
    row = db.execute_sql(_CHARACTER_SQL + f" WHERE t.character_id = {sql.p}", (character_id,))
    found = row.fetchone()
    if found is not None:
        profile = _character(found)
    else:
        require_character(db, character_id)
        first, last, name = db.execute_sql(
            "SELECT MIN(kill_time), MAX(kill_time), MAX(related_character_name) FROM killmails "
            f"WHERE related_character_id = {sql.p}",
            (character_id,),
        ).fetchone()
        profile = {
            "id": character_id,
            "name": name,
            "corporation": None,
            "alliance": None,
            "tracked": False,
            "tracked_since": None,
            "first_involvement": as_datetime(first),
            "last_involvement": as_datetime(last),
        }
    totals = character_totals(db, character_id)
    profile["kills"], profile["deaths"] = totals.kills, totals.deaths
    profile["totals"] = totals.as_dict()
    return profile


# --- killmail pages ----------------------------------------------------------------------


@dataclass(frozen=True)
class PageKey:
    """Where a page ends: the last item's (kill_time, killmail_id, role). The next page
    holds the items strictly before it in newest-first order."""

    kill_time: dt.datetime
    killmail_id: int
    role: str

    def encode(self) -> str:
        text = f"1|{self.kill_time.isoformat()}|{self.killmail_id}|{self.role}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> PageKey:
        """Parse a cursor made by `encode`; anything else raises InvalidParameter."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
            version, when, killmail_id, role = text.split("|")
            kill_time = dt.datetime.fromisoformat(when)
            if version != "1" or role not in ROLES or kill_time.utcoffset() != dt.timedelta(0):
                raise ValueError(text)
            number = int(killmail_id)
            if not killmail_id.isdigit() or number > 2**63 - 1:
                raise ValueError(text)
        except (ValueError, UnicodeError, binascii.Error):
            raise InvalidParameter("cursor", "not a cursor this API gave out") from None
        return cls(kill_time.astimezone(dt.UTC), number, role)


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next: PageKey | None = None


_ITEM_COLUMNS = (
    "k.killmail_id, k.kill_time, k.character_role, k.final_blow, k.solo, k.npc, "
    "k.solar_system_id, k.solar_system_name, k.region_id, k.region_name, k.ship_type_id, "
    "k.ship_type_name, k.total_value, k.attacker_count, k.related_character_id, "
    "k.value_source"
)
_ITEM_WIDTH = 16
"""Columns in `_ITEM_COLUMNS`."""


def _named(entity_id: Any, name: Any) -> dict[str, Any] | None:
    return None if entity_id is None else {"id": int(entity_id), "name": name}


def killmail_item(row: tuple[Any, ...]) -> dict[str, Any]:
    """One involvement as a killmail page item (columns `_ITEM_COLUMNS`)."""
    (kid, when, role, fb, solo, npc, system, system_name, region, region_name, ship,
     ship_name, value, attackers, _character, value_source) = row  # fmt: skip
    return {
        "killmail_id": int(kid),
        "kill_time": as_datetime(when),
        "role": role,
        "final_blow": bool(fb),
        "solo": bool(solo),
        "npc": bool(npc),
        "system": _named(system, system_name),
        "region": _named(region, region_name),
        "ship": _named(ship, ship_name),
        "total_value": None if value is None else to_isk(str(value)),
        "value_source": value_source,
        "attacker_count": int(attackers),
        "zkillboard_url": ZKILLBOARD_KILL_URL.format(int(kid)),
    }


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidParameter("limit", f"{limit} is out of range (1..{MAX_PAGE_SIZE})")
    return limit


def killmail_page(
    db: Database,
    character_id: int,
    *,
    role: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    after: PageKey | None = None,
) -> Page:
    """The character's involvements newest first, `limit` per page, continuing after
    `after` (keyset on kill_time, killmail_id, role: no OFFSET, so a page costs the same
    at any depth and rows inserted meanwhile neither repeat nor vanish)."""
    check_limit(limit)
    check_range(start, end)
    if role is not None and role not in ROLES:
        raise InvalidParameter("role", f"{role!r} is not one of {', '.join(ROLES)}")
    sql = ReadSql(db)
    params: list[Any] = [character_id]
    where = [f"k.related_character_id = {sql.p}", *time_conditions(sql, start, end, params)]
    if role is not None:
        where.append(f"k.character_role = {sql.p}")
        params.append(role)
    if after is not None:
        where.append(
            f"(k.kill_time, k.killmail_id, k.character_role) < ({sql.p}, {sql.p}, {sql.p})"
        )
        params += [sql.timestamp(after.kill_time), after.killmail_id, after.role]
    params.append(limit + 1)
    rows = db.execute_sql(
        f"SELECT {_ITEM_COLUMNS} FROM killmails k WHERE {' AND '.join(where)} "
        "ORDER BY k.kill_time DESC, k.killmail_id DESC, k.character_role DESC "
        f"LIMIT {sql.p}",
        params,
    ).fetchall()
    items = [killmail_item(row) for row in rows[:limit]]
    page = Page(items)
    if len(rows) > limit:
        last = items[-1]
        page.next = PageKey(last["kill_time"], last["killmail_id"], last["role"])
    return page


def activity(
    db: Database, character_id: int, start: dt.date | None = None, end: dt.date | None = None
) -> list[list[int]]:
    """Involvements per UTC weekday (rows, Monday first) and hour (columns 0..23)."""
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = [character_id]
    where = [f"k.related_character_id = {sql.p}", *time_conditions(sql, start, end, params)]
    return weekday_hour_grid(db, sql, where, params, "COUNT(*)")


def weekday_hour_grid(
    db: Database, sql: ReadSql, where: list[str], params: list[Any], counted: str
) -> list[list[int]]:
    """`counted` (an aggregate over `killmails k`) per UTC weekday (rows, Monday first) and
    hour (columns 0..23) of the involvements matching `where`."""
    grid = [[0] * 24 for _ in range(7)]
    rows = db.execute_sql(
        f"SELECT {sql.weekday('k.kill_time')}, {sql.hour('k.kill_time')}, {counted} "
        f"FROM killmails k {('WHERE ' + ' AND '.join(where)) if where else ''} GROUP BY 1, 2",
        params,
    )
    for weekday, hour, count in rows:
        grid[int(weekday)][int(hour)] = int(count)
    return grid


# --- one mail ----------------------------------------------------------------------------


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def killmail_detail(db: Database, killmail_id: int) -> dict[str, Any]:
    """The stored mail: victim, the tracked attackers' entries, zkb, and which tracked
    characters it credits in which role."""
    p = db.param
    rows = db.execute_sql(
        f"SELECT {_ITEM_COLUMNS}, k.related_character_name, k.victim_data, k.attacker_data, "
        f"k.zkb_data FROM killmails k WHERE k.killmail_id = {p} "
        "ORDER BY k.character_role DESC, k.related_character_id",
        (killmail_id,),
    ).fetchall()
    if not rows:
        raise UnknownKillmail(killmail_id)
    first = killmail_item(rows[0][:_ITEM_WIDTH])
    victim: Any = None
    attackers: list[Any] = []
    credits = []
    for row in rows:
        role, fb, cid, name = row[2], row[3], row[14], row[_ITEM_WIDTH]
        victim_data, attacker_data, zkb = (_json(v) for v in row[_ITEM_WIDTH + 1 :])
        if role == ROLE_VICTIM or victim is None:
            victim = victim_data if (victim is None or role == ROLE_VICTIM) else victim
        if attacker_data is not None:
            attackers.append(attacker_data)
        credits.append(
            {"character_id": int(cid), "name": name, "role": role, "final_blow": bool(fb)}
        )
    detail = {k: v for k, v in first.items() if k not in ("role", "final_blow", "ship")}
    detail.update(victim=victim, attackers=attackers, zkb=zkb, tracked=credits)
    return detail


# --- stored statistics -------------------------------------------------------------------


def _top(mapping: Any, names: dict[str, str | None]) -> list[dict[str, Any]]:
    items = sorted(((str(k), int(v)) for k, v in (_json(mapping) or {}).items()),
                   key=lambda i: (-i[1], i[0]))  # fmt: skip
    out = []
    for key, count in items[:TOP_ENTRIES]:
        entity_id = int(key) if key.isdigit() else None
        out.append({"id": entity_id, "name": names.get(key), "count": count})
    return out


def lookup_names(
    db: Database, ships: set[str], regions: set[str]
) -> dict[str, dict[str, str | None]]:
    """Names of ship type ids (`universe_types`, then the ESI names cache) and region ids
    (`universe_regions`), keyed by the id as text under `ships` and `regions`."""
    p = db.param
    found: dict[str, dict[str, str | None]] = {"ships": {}, "regions": {}}
    ship_ids = sorted(int(s) for s in ships if s.isdigit())
    if ship_ids:
        marks = ", ".join([p] * len(ship_ids))
        for tid, name in db.execute_sql(
            f"SELECT type_id, name FROM universe_types WHERE type_id IN ({marks})", ship_ids
        ):
            found["ships"][str(tid)] = name
        missing = [t for t in ship_ids if str(t) not in found["ships"]]
        if missing:  # the ESI names cache (no scan of the involvements)
            marks = ", ".join([p] * len(missing))
            for tid, name in db.execute_sql(
                f"SELECT entity_id, name FROM entity_names WHERE entity_id IN ({marks})", missing
            ):
                found["ships"][str(tid)] = name
    region_ids = sorted(int(r) for r in regions if r.isdigit())
    if region_ids:
        marks = ", ".join([p] * len(region_ids))
        for rid, name in db.execute_sql(
            f"SELECT region_id, name FROM universe_regions WHERE region_id IN ({marks})",
            region_ids,
        ):
            found["regions"][str(rid)] = name
    return found


_STAT_COLUMNS = (
    "s.character_id, s.character_name, s.period_start, s.period_end, s.kills_count, "
    "s.deaths_count, s.isk_destroyed, s.isk_lost, s.solo_kills, s.final_blows, s.npc_deaths, "
    "s.ship_usage, s.region_activity"
)


def _stat_rows(db: Database, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    maps = [(_json(r[11]) or {}, _json(r[12]) or {}) for r in rows]
    names = lookup_names(
        db,
        {k for ships, _ in maps for k in ships},
        {k for _, regions in maps for k in regions},
    )
    out = []
    for row, (ships, regions) in zip(rows, maps, strict=True):
        (cid, name, start, end, kills, deaths, destroyed, lost, solo, fb, npc) = row[:11]
        totals = Totals(
            int(kills), int(deaths), to_isk(str(destroyed)) or Decimal(0),
            to_isk(str(lost)) or Decimal(0), int(solo), int(fb), int(npc),
        )  # fmt: skip
        out.append(
            {
                "character_id": int(cid),
                "character_name": name,
                "period_start": as_date(start),
                "period_end": as_date(end),
                "kills": totals.kills,
                "deaths": totals.deaths,
                "isk_destroyed": totals.isk_destroyed,
                "isk_lost": totals.isk_lost,
                "solo_kills": totals.solo_kills,
                "final_blows": totals.final_blows,
                "npc_deaths": totals.npc_deaths,
                "efficiency": totals.efficiency,
                "top_ships": _top(ships, names["ships"]),
                "top_regions": _top(regions, names["regions"]),
            }
        )
    return out


def period_overlap(
    sql: ReadSql, start: dt.date | None, end: dt.date | None, params: list[Any]
) -> list[str]:
    """Conditions on `killmail_statistics s`: the period overlaps the days `start`..`end`
    (both inclusive, either open); their parameters are appended to `params`."""
    where = []
    if start is not None:
        where.append(f"s.period_end >= {sql.p}")
        params.append(sql.date(start))
    if end is not None:
        where.append(f"s.period_start <= {sql.p}")
        params.append(sql.date(end))
    return where


def character_stats(
    db: Database,
    character_id: int,
    period: str = "monthly",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[dict[str, Any]]:
    """The stored statistics periods of that type overlapping the days `start`..`end`,
    oldest first."""
    check_period(period)
    check_range(start, end)
    sql = ReadSql(db)
    params: list[Any] = [character_id, period]
    where = [
        f"s.character_id = {sql.p}",
        f"s.period_type = {sql.p}",
        *period_overlap(sql, start, end, params),
    ]
    rows = db.execute_sql(
        f"SELECT {_STAT_COLUMNS} FROM killmail_statistics s WHERE {' AND '.join(where)} "
        "ORDER BY s.period_start",
        params,
    ).fetchall()
    return _stat_rows(db, rows)


def current_period_start(period: str, today: dt.date | None = None) -> dt.date:
    return period_bounds(check_period(period), today or dt.datetime.now(dt.UTC).date())[0]


def leaderboard(
    db: Database,
    period: str = "monthly",
    start: dt.date | None = None,
    by: str = "kills",
    limit: int = 10,
) -> dict[str, Any]:
    """Characters ranked by `by` in the period starting on `start` (default: the current
    period). Ties: more kills, then the lower character id."""
    check_period(period)
    if by not in RANKINGS:
        raise InvalidParameter("by", f"{by!r} is not one of {', '.join(RANKINGS)}")
    check_limit(limit)
    if start is None:
        start = current_period_start(period)
    elif period_bounds(period, start)[0] != start:
        raise InvalidParameter(
            "start", f"{start.isoformat()} is not the first day of a {period} period"
        )
    sql = ReadSql(db)
    destroyed, lost = sql.number("s.isk_destroyed"), sql.number("s.isk_lost")
    key = {
        "kills": "s.kills_count",
        "deaths": "s.deaths_count",
        "isk_destroyed": destroyed,
        "isk_lost": lost,
        "solo_kills": "s.solo_kills",
        "final_blows": "s.final_blows",
        "efficiency": f"CASE WHEN {destroyed} + {lost} > 0 "
        f"THEN {destroyed} / ({destroyed} + {lost}) END",
    }[by]
    rows = db.execute_sql(
        f"SELECT {_STAT_COLUMNS} FROM killmail_statistics s "
        f"WHERE s.period_type = {sql.p} AND s.period_start = {sql.p} "
        f"ORDER BY {key} DESC NULLS LAST, s.kills_count DESC, s.character_id LIMIT {sql.p}",
        (period, sql.date(start), limit),
    ).fetchall()
    items = _stat_rows(db, rows)
    for rank, item in enumerate(items, 1):
        item["rank"] = rank
    return {
        "period": period,
        "period_start": start,
        "period_end": period_bounds(period, start)[1],
        "by": by,
        "items": items,
    }
