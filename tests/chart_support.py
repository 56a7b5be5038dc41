"""Helpers for the chart tests: reading a PNG back, and picking arguments with data."""

from __future__ import annotations

import datetime as dt
import io
import struct
from typing import Any

from peewee import Database
from PIL import Image

from wn_persist_plugin.charts import CHART_NAMES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BACKGROUND = (0x31, 0x33, 0x38)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def drawn_pixels(data: bytes) -> int:
    """Pixels that are not the background colour."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return sum(count for count, colour in image.getcolors(1 << 24) if colour != BACKGROUND)


def busiest(db: Database) -> tuple[int, dt.date]:
    """The character with the most involvements, and the monthly period with most kills."""
    cid = db.execute_sql(
        "SELECT related_character_id FROM killmails GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 1"
    ).fetchall()[0][0]
    start = db.execute_sql(
        "SELECT period_start FROM killmail_statistics WHERE period_type = 'monthly' "
        "GROUP BY period_start ORDER BY SUM(kills_count) DESC, period_start LIMIT 1"
    ).fetchall()[0][0]
    return int(cid), dt.date.fromisoformat(str(start))


def arguments(name: str, character: int, month: dt.date) -> dict[str, Any]:
    """Query parameters that give chart `name` data."""
    assert name in CHART_NAMES
    if name.startswith("leaderboard"):
        return {"start": month.isoformat()}
    if name == "group-trend":
        return {"period": "weekly", "from": "2014-01-01", "to": "2014-12-31"}
    return {"character": str(character)}
