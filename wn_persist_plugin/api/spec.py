"""The typed description of every route's parameters: pydantic query models, validated
by spectree, which also writes the OpenAPI 3.1 document from them. A parameter that fails
validation answers 400 naming it (see `errors`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from spectree import SpecTree

from .. import __version__
from ..statistics.history import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from .errors import bad_parameter

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    if isinstance(value, str) and not _DAY.match(value):
        raise ValueError("not a date (YYYY-MM-DD)")
    return value


Day = Annotated[dt.date, BeforeValidator(_iso_day)]
Period = Literal["daily", "weekly", "monthly"]


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RangeQuery(_Query):
    from_: Day | None = Field(None, alias="from", description="First day (inclusive, UTC).")
    to: Day | None = Field(None, description="Last day (inclusive, UTC).")


class PeriodRangeQuery(RangeQuery):
    period: Period = Field("monthly", description="Period type.")


class KillmailPageQuery(RangeQuery):
    role: Literal["attacker", "victim"] | None = Field(None, description="Only this role.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    cursor: str | None = Field(None, max_length=200, description="`next` of the previous page.")


class LeaderboardQuery(_Query):
    period: Period = Field("monthly", description="Period type.")
    start: Day | None = Field(None, description="First day of the period (default: current).")
    by: Literal[
        "kills", "deaths", "isk_destroyed", "isk_lost", "solo_kills", "final_blows", "efficiency"
    ] = Field("kills", description="Ranking figure.")
    limit: int = Field(10, ge=1, le=MAX_PAGE_SIZE, description="Characters listed.")


class ExportQuery(RangeQuery):
    format: Literal["csv", "json", "ndjson"] = Field("ndjson", description="Output format.")
    character: int | None = Field(None, ge=0, description="Only this character id.")


def _before(req: Any, resp: Any, error: Any, instance: Any, *rest: Any) -> None:
    """Turn spectree's validation failure into a 400 problem naming the parameter."""
    if error is None:
        return
    first = error.errors()[0] if error.errors() else {"loc": ("query",), "msg": str(error)}
    name = str(first["loc"][0]) if first.get("loc") else "query"
    raise bad_parameter(name, str(first.get("msg", "invalid")))


def make_spec() -> SpecTree:
    return SpecTree(
        "falcon",
        title="wn-persist",
        version=__version__,
        openapi_version="3.1.0",
        path="apidoc",
        before=_before,
        validation_error_status=400,
        annotations=True,
    )


SPEC = make_spec()
"""The route descriptions (views are decorated with it at import; apps register into it)."""


class ChartQuery(RangeQuery):
    character: int | None = Field(None, ge=1, description="Character id (the group if unset).")
    period: Period = Field("monthly", description="Period type.")
    start: Day | None = Field(None, description="Leaderboards: first day of the period.")
    width: int = Field(1200, ge=300, le=4000, description="Image width in pixels.")
    height: int = Field(600, ge=200, le=4000, description="Image height in pixels.")
    limit: int = Field(10, ge=1, le=50, description="Bars shown (leaderboards, top lists).")
