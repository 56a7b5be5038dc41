"""Column types that behave the same on SQLite and PostgreSQL.

- `UTCDateTimeField`: takes aware datetimes only, stores naive UTC (SQLite: ISO text,
  PostgreSQL: `timestamp`), returns aware UTC. Range queries and `date()` grouping then
  agree on both databases whatever the session time zone.
- `ISKField`: ISK with two decimals, exact. PostgreSQL `NUMERIC(20,2)`; SQLite `TEXT`
  holding the exact decimal (SQLite's own decimals are floats and lose cents).
- `json_dumps`: the one JSON encoder for every JSON column (model fields and the
  writer's driver path alike); it also takes `Decimal`s, which hosts that decode JSON
  with `parse_float=Decimal` hand over.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from peewee import DatabaseProxy, Field, SqliteDatabase

from .dialect import stored_instant

CENT = Decimal("0.01")
MAX_ID = 2**63 - 1
"""The largest value an id column (64-bit signed integer on both databases) holds."""


def _database_of(field: Field) -> Any:
    db = field.model._meta.database if getattr(field, "model", None) else None
    if isinstance(db, DatabaseProxy):
        db = db.obj
    return db


def _is_sqlite(field: Field) -> bool:
    return isinstance(_database_of(field), SqliteDatabase)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # As the JSON number it was: a whole number stays an integer, '1000.0' a float.
        if value.is_finite() and value.as_tuple().exponent >= 0:  # type: ignore[operator]
            return int(value)
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> str:
    """JSON text for a JSON column; `Decimal`s become JSON numbers."""
    return json.dumps(value, default=_json_default)


def to_isk(value: Any) -> Decimal | None:
    """An ISK amount as a Decimal rounded to the cent; None stays None."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"not an ISK amount: {value!r}") from None


def to_id(value: Any) -> int:
    """An EVE id from an int or a digit string, within 0..MAX_ID (what a 64-bit column
    holds); bools, floats with fractions and out-of-range numbers raise ValueError."""
    if isinstance(value, bool):
        raise ValueError("boolean is not an id")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        result = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    else:
        raise ValueError(f"not an integer: {value!r}")
    if not 0 <= result <= MAX_ID:
        raise ValueError(f"{value!r} is out of range for an id (0..2**63-1)")
    return result


class UTCDateTimeField(Field):
    field_type = "DATETIME"

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return stored_instant(value, sqlite=_is_sqlite(self))

    def python_value(self, value: Any) -> dt.datetime | dt.date | None:
        # fn.date(column) results pass through this converter too: keep dates as dates.
        if value is None:
            return None
        if isinstance(value, str):
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            value = dt.datetime.fromisoformat(value)
        if not isinstance(value, dt.datetime):
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class ISKField(Field):
    """Exact ISK amount. The column type comes from the database's `field_types`
    (set by `wn_persist_plugin.database.open_database`)."""

    field_type = "ISK"

    def ddl_datatype(self, ctx: Any) -> Any:
        if "ISK" not in ctx.state.field_types:
            raise RuntimeError("ISKField needs a database made by open_database()")
        return super().ddl_datatype(ctx)

    def db_value(self, value: Any) -> Any:
        amount = to_isk(value)
        if amount is None:
            return None
        return format(amount, "f") if _is_sqlite(self) else amount

    def python_value(self, value: Any) -> Decimal | None:
        return to_isk(value)
