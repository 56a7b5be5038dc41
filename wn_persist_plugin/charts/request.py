"""Which chart, with which parameters, and the figures it draws (no matplotlib here).

`ChartRequest.checked()` validates the parameters (`InvalidParameter` naming the one at
fault); `load_chart` reads the figures through the `statistics` queries and returns a
`Chart`: a title, a subtitle and one body (`Bars`, `Trend` or `Heatmap`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from peewee import Database

from ..errors import InvalidParameter
from ..statistics import charts_data, group, history
from ..statistics.aggregation import period_bounds

CHART_NAMES = (
    "leaderboard-kills",
    "leaderboard-isk",
    "character-trend",
    "group-trend",
    "activity-heatmap",
    "top-ships",
    "top-regions",
)
LEADERBOARDS = ("leaderboard-kills", "leaderboard-isk")
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1200, 600
WIDTH_RANGE, HEIGHT_RANGE = (300, 4000), (200, 4000)
MAX_LIMIT = 50
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class ChartRequest:
    """A chart's parameters, as the CLI and the API take them. `start` picks one period
    (leaderboards); `first`..`last` (`from`/`to`) is a range of days (other charts)."""

    name: str
    character: int | None = None
    period: str = "monthly"
    start: dt.date | None = None
    first: dt.date | None = None
    last: dt.date | None = None
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    limit: int = 10

    def checked(self) -> ChartRequest:
        """This request, or `InvalidParameter` naming the parameter that is wrong."""
        if self.name not in CHART_NAMES:
            raise InvalidParameter("name", f"{self.name!r} is not one of {', '.join(CHART_NAMES)}")
        history.check_period(self.period)
        for parameter, value, (low, high) in (
            ("width", self.width, WIDTH_RANGE),
            ("height", self.height, HEIGHT_RANGE),
            ("limit", self.limit, (1, MAX_LIMIT)),
        ):
            if not low <= value <= high:
                raise InvalidParameter(parameter, f"{value} is out of range ({low}..{high})")
        if self.name in LEADERBOARDS:
            if self.character is not None:
                raise InvalidParameter("character", f"{self.name} ranks every character")
            if self.first is not None or self.last is not None:
                which = "from" if self.first is not None else "to"
                raise InvalidParameter(which, f"{self.name} shows one period: use start")
            if self.start is not None:
                bounds = period_bounds(self.period, self.start)
                if bounds[0] != self.start:
                    raise InvalidParameter(
                        "start", f"{self.start.isoformat()} is not the first day of a "
                        f"{self.period} period",
                    )  # fmt: skip
            return self
        if self.start is not None:
            raise InvalidParameter("start", f"only the leaderboards take start; {self.name} "
                                   "takes from and to")  # fmt: skip
        history.check_range(self.first, self.last)
        if self.name == "character-trend" and self.character is None:
            raise InvalidParameter("character", "character-trend needs a character id")
        if self.name == "group-trend" and self.character is not None:
            raise InvalidParameter("character", "group-trend shows the whole group")
        return self


@dataclass(frozen=True)
class Bars:
    """Horizontal bars, largest first; `isk` formats the values as ISK."""

    labels: tuple[str, ...]
    values: tuple[float, ...]
    isk: bool = False
    color: str = "#5865f2"

    @property
    def empty(self) -> bool:
        return not any(self.values)


@dataclass(frozen=True)
class Trend:
    """Per period: kills and deaths (counts), ISK destroyed and lost."""

    periods: tuple[dt.date, ...]
    period: str
    kills: tuple[int, ...]
    deaths: tuple[int, ...]
    isk_destroyed: tuple[float, ...]
    isk_lost: tuple[float, ...]
    death_label: str = "deaths"

    @property
    def empty(self) -> bool:
        return not any(self.kills) and not any(self.deaths)


@dataclass(frozen=True)
class Heatmap:
    """Involvements per weekday (rows, Monday first) and UTC hour (columns)."""

    grid: tuple[tuple[int, ...], ...]

    @property
    def empty(self) -> bool:
        return not any(any(row) for row in self.grid)


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    subtitle: str
    body: Bars | Trend | Heatmap
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT

    @property
    def empty(self) -> bool:
        return self.body.empty

    def etag(self) -> str:
        """A strong validator of the image: the same figures and size draw the same PNG."""
        text = repr(dataclasses.astuple(self)).encode()
        return '"' + hashlib.blake2b(text, digest_size=12).hexdigest() + '"'


def _days(first: dt.date | None, last: dt.date | None) -> str:
    if first is None and last is None:
        return "all stored history"
    if last is None:
        return f"since {first}"
    if first is None:
        return f"until {last}"
    return f"{first} to {last}"


def _number(value: Decimal | int | float | None) -> float:
    return float(value or 0)


def _leaderboard(db: Database, request: ChartRequest) -> Chart:
    by = "kills" if request.name == "leaderboard-kills" else "isk_destroyed"
    board = history.leaderboard(db, request.period, request.start, by, request.limit)
    items = board["items"]
    labels = tuple(item["character_name"] or str(item["character_id"]) for item in items)
    values = tuple(_number(item[by]) for item in items)
    what = "kills" if by == "kills" else "ISK destroyed"
    return Chart(
        request.name,
        f"Top pilots by {what}",
        f"{request.period} {board['period_start']} to {board['period_end']} (UTC)",
        Bars(labels, values, isk=by != "kills", color="#57f287" if by == "kills" else "#fee75c"),
    )


def _who(db: Database, character: int | None) -> str:
    if character is None:
        return "the group"
    history.require_character(db, character)
    return charts_data.character_name(db, character)


def load_chart(db: Database, request: ChartRequest) -> Chart:
    """The figures of the (checked) request's chart."""
    request.checked()
    if request.name in LEADERBOARDS:
        board = _leaderboard(db, request)
        return dataclasses.replace(board, width=request.width, height=request.height)
    days = _days(request.first, request.last)
    who = _who(db, request.character)
    body: Bars | Trend | Heatmap
    if request.name == "character-trend":
        assert request.character is not None
        rows = history.character_stats(
            db, request.character, request.period, request.first, request.last
        )
        body = _trend(rows, request.period, "deaths")
        title = f"{who}: {request.period} kills and deaths"
    elif request.name == "group-trend":
        rows = group.group_stats(db, request.period, request.first, request.last)
        body = _trend(rows, request.period, "losses")
        title = f"The group: {request.period} kills and losses (each mail once)"
    elif request.name == "activity-heatmap":
        if request.character is None:
            grid = charts_data.group_activity(db, request.first, request.last)
        else:
            grid = history.activity(db, request.character, request.first, request.last)
        body = Heatmap(tuple(tuple(row) for row in grid))
        title = f"When {who} fights (UTC)"
    else:
        kind = "ships" if request.name == "top-ships" else "regions"
        items = charts_data.top_entities(
            db, kind, request.character, request.period, request.first, request.last,
            request.limit,
        )  # fmt: skip
        body = Bars(
            tuple(str(i["name"]) for i in items),
            tuple(float(i["count"]) for i in items),
            color="#5865f2" if kind == "ships" else "#eb459e",
        )
        title = f"{who}: most used ships" if kind == "ships" else f"{who}: most active regions"
    return Chart(request.name, title, days, body, request.width, request.height)


def _trend(rows: list[dict], period: str, death_label: str) -> Trend:
    return Trend(
        tuple(r["period_start"] for r in rows),
        period,
        tuple(int(r["kills"]) for r in rows),
        tuple(int(r["deaths"]) for r in rows),
        tuple(_number(r["isk_destroyed"]) for r in rows),
        tuple(_number(r["isk_lost"]) for r in rows),
        death_label,
    )
