"""JSON for API bodies: ISK as exact two-place decimal strings, timestamps ISO 8601 UTC
with `Z`, dates `YYYY-MM-DD`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from ..db.fields import CENT


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.quantize(CENT), "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, separators=(",", ":")).encode()
