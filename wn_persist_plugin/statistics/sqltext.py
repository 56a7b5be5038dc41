"""SQL fragments and parameters that differ between SQLite and PostgreSQL in the statistics
SQL: `ReadSql` for the read queries of `history`, `group` and `export`; the aggregation
adds its own pieces on top of it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from peewee import Database

from ..db.dialect import day_param, instant_param, is_postgres
from ..db.fields import CENT


class ReadSql:
    """Dialect pieces for reading `killmails` (aliased `k`) and `killmail_statistics`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pg = is_postgres(db)
        self.p = db.param

    @property
    def cents(self) -> str:
        """A mail's value in integer cents (exact on both databases)."""
        if self.pg:
            return "COALESCE(CAST(k.total_value * 100 AS BIGINT), 0)"
        return "COALESCE(CAST(ROUND(k.total_value * 100) AS INTEGER), 0)"

    def any_true(self, expr: str) -> str:
        """Aggregate: true when `expr` is true on any row of the group."""
        return f"bool_or({expr})" if self.pg else f"MAX({expr})"

    def number(self, column: str) -> str:
        """An ISK column as a number SQL can order and divide."""
        return column if self.pg else f"CAST({column} AS REAL)"

    def period_start(self, period_type: str, expr: str) -> str:
        if self.pg:
            if period_type == "daily":
                return f"({expr})::date"
            unit = "week" if period_type == "weekly" else "month"
            return f"date_trunc('{unit}', ({expr})::timestamp)::date"
        if period_type == "daily":
            return f"date({expr})"
        if period_type == "weekly":
            return f"date({expr}, 'weekday 0', '-6 days')"
        return f"date({expr}, 'start of month')"

    def weekday(self, expr: str) -> str:
        """0 = Monday .. 6 = Sunday."""
        if self.pg:
            return f"CAST(EXTRACT(ISODOW FROM {expr}) AS INTEGER) - 1"
        return f"(CAST(strftime('%w', {expr}) AS INTEGER) + 6) % 7"

    def hour(self, expr: str) -> str:
        if self.pg:
            return f"CAST(EXTRACT(HOUR FROM {expr}) AS INTEGER)"
        return f"CAST(strftime('%H', {expr}) AS INTEGER)"

    def timestamp(self, value: dt.datetime) -> Any:
        return instant_param(self.db, value)

    def date(self, value: dt.date) -> Any:
        return day_param(self.db, value)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def as_date(value: Any) -> dt.date:
    """A DATE column's value (a date on PostgreSQL, text on SQLite)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def as_datetime(value: Any) -> dt.datetime:
    """A timestamp column's value as aware UTC (naive datetime on PostgreSQL, text on
    SQLite)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def isk_from_cents(cents: Any) -> Decimal:
    return (Decimal(int(cents or 0)) / 100).quantize(CENT)
