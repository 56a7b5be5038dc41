"""Reading statistics: a character's latest periods and the leaderboard of a period, plus
the formatting the `stats` command shows (ISK in human units, efficiency, top ships)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from peewee import SQL, Database, fn

from ..db.connect import is_sqlite
from ..db.models import VALUE_SOURCES, Involvement, KillmailStatistics, TrackedCharacter
from ..errors import UnknownCharacter, UnknownPeriod
from .aggregation import FIGURES, PERIODS

_IDENTITY = ("period_type", "period_start", "period_end", "character_id", "character_name")
COLUMNS = _IDENTITY + tuple(f for f in FIGURES if f not in _IDENTITY)
"""A statistics row as `character_periods` and `leaderboard` return it, in this order."""


@dataclass(frozen=True)
class Character:
    character_id: int
    name: str | None


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise UnknownPeriod(period, PERIODS)


def resolve_character(db: Database, text: str) -> Character:
    """A character by EVE id or by name (case-insensitive; tracked characters first, then
    names seen in statistics). Raises `UnknownCharacter`."""
    text = text.strip()
    if text.isdigit():
        cid = int(text)
        tracked = TrackedCharacter.get_or_none(TrackedCharacter.character_id == cid)
        if tracked is not None:
            return Character(cid, tracked.character_name)
        row = (
            KillmailStatistics.select(KillmailStatistics.character_name)
            .where(KillmailStatistics.character_id == cid)
            .order_by(KillmailStatistics.character_name.desc(nulls="LAST"))
            .first()
        )
        if row is not None:
            return Character(cid, row.character_name)
        raise UnknownCharacter(text)
    lowered = text.lower()
    for model, id_field, name_field in (
        (TrackedCharacter, TrackedCharacter.character_id, TrackedCharacter.character_name),
        (KillmailStatistics, KillmailStatistics.character_id, KillmailStatistics.character_name),
    ):
        query = model.select(id_field).where(fn.LOWER(name_field) == lowered).distinct()
        ids = {int(cid) for (cid,) in cast(Iterable[tuple[int]], query.tuples())}
        if len(ids) > 1:
            shown = ", ".join(str(i) for i in sorted(ids))
            raise UnknownCharacter(text, f"several characters have that name ({shown}); use an id")
        if ids:
            cid = ids.pop()
            name = (model.select(name_field).where(id_field == cid).tuples().first() or (text,))[0]
            return Character(cid, name)
    raise UnknownCharacter(text)


def _row(stat: KillmailStatistics) -> dict[str, Any]:
    return {column: getattr(stat, column) for column in COLUMNS}


def character_periods(
    db: Database, character_id: int, period: str = "weekly", last: int = 8
) -> list[dict[str, Any]]:
    """The character's latest `last` periods of that type that have a row, oldest first."""
    _check_period(period)
    query = (
        KillmailStatistics.select()
        .where(
            (KillmailStatistics.character_id == character_id)
            & (KillmailStatistics.period_type == period)
        )
        .order_by(KillmailStatistics.period_start.desc())
        .limit(max(last, 0))
    )
    return [_row(s) for s in reversed(list(query))]


def latest_period_start(db: Database, period: str) -> dt.date | None:
    _check_period(period)
    row = (
        KillmailStatistics.select(KillmailStatistics.period_start)
        .where(KillmailStatistics.period_type == period)
        .order_by(KillmailStatistics.period_start.desc())
        .first()
    )
    return row.period_start if row else None


def leaderboard(
    db: Database, period: str = "weekly", by: str = "isk", top: int = 10
) -> list[dict[str, Any]]:
    """The top characters of the latest period of that type, by ISK destroyed or kills."""
    if by not in ("isk", "kills"):
        raise ValueError(f"unknown ranking {by!r} (use isk or kills)")
    start = latest_period_start(db, period)
    if start is None:
        return []
    isk = SQL("CAST(isk_destroyed AS REAL)") if is_sqlite(db) else KillmailStatistics.isk_destroyed
    first, second = (
        (isk, KillmailStatistics.kills_count)
        if by == "isk"
        else (KillmailStatistics.kills_count, isk)
    )
    query = (
        KillmailStatistics.select()
        .where(
            (KillmailStatistics.period_type == period) & (KillmailStatistics.period_start == start)
        )
        .order_by(first.desc(), second.desc(), KillmailStatistics.character_id)
        .limit(max(top, 0))
    )
    return [_row(s) for s in query]


def value_sources(db: Database, character_id: int, start: dt.date, end: dt.date) -> dict[str, int]:
    """How many of the character's mails in the days `start`..`end` (inclusive, UTC) have
    each value source (`zkb`, `esi_prices`, `none`; every key present)."""
    begin = dt.datetime.combine(start, dt.time(), dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    query = (
        Involvement.select(Involvement.value_source, fn.COUNT(Involvement.killmail_id.distinct()))
        .where(
            (Involvement.related_character_id == character_id)
            & (Involvement.kill_time >= begin)
            & (Involvement.kill_time < until)
        )
        .group_by(Involvement.value_source)
        .tuples()
    )
    counts = dict.fromkeys(VALUE_SOURCES, 0)
    for source, count in cast(Iterable[tuple[str, int]], query):
        counts[str(source)] = counts.get(str(source), 0) + int(count)
    return counts


def value_sources_line(counts: dict[str, int]) -> str:
    """`values: 12 from zKillboard, 3 estimated from market prices, 1 without a value`."""
    return (
        f"values: {counts.get('zkb', 0)} from zKillboard, "
        f"{counts.get('esi_prices', 0)} estimated from market prices, "
        f"{counts.get('none', 0)} without a value"
    )


# --- presentation ----------------------------------------------------------------------


def human_isk(value: Decimal | int | float | None) -> str:
    """ISK in human units: 950, 12.3K, 4.56M, 1.23B, 2.50T."""
    amount = Decimal(value or 0)
    for size, unit in ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (10**6, "M")):
        if abs(amount) >= size:
            return f"{amount / size:.2f}{unit}"
    if abs(amount) >= 1000:
        return f"{amount / 1000:.1f}K"
    return f"{amount:.0f}"


def efficiency(destroyed: Decimal, lost: Decimal) -> float | None:
    """ISK efficiency in percent (destroyed / (destroyed + lost)); None without ISK."""
    total = (destroyed or 0) + (lost or 0)
    if not total:
        return None
    return float(Decimal(destroyed or 0) * 100 / Decimal(total))


def top_ships(usage: dict[str, int] | None, count: int = 3) -> list[tuple[int, int]]:
    """The most used ship type ids with their counts, most used first."""
    items = sorted(
        ((int(k), int(v)) for k, v in (usage or {}).items()), key=lambda i: (-i[1], i[0])
    )
    return items[:count]


def ship_names(db: Database, type_ids: set[int]) -> dict[int, str]:
    """Ship names the stored involvements know (from enriched or named feeds)."""
    if not type_ids:
        return {}
    query = (
        Involvement.select(Involvement.ship_type_id, fn.MAX(Involvement.ship_type_name))
        .where(
            Involvement.ship_type_id.in_(sorted(type_ids))
            & Involvement.ship_type_name.is_null(False)
        )
        .group_by(Involvement.ship_type_id)
        .tuples()
    )
    return {int(tid): name for tid, name in cast(Iterable[tuple[int, str]], query)}


def json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """A statistics row with dates as ISO text and ISK as exact decimal strings."""
    out = dict(row)
    for key in ("period_start", "period_end"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    for key in ("isk_destroyed", "isk_lost"):
        out[key] = format(Decimal(out[key] or 0), "f")
    return out
