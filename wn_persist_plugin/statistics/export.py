"""Exporting the involvements: one row per involvement, read in batches by keyset on the
row id (memory stays flat whatever the size), written as CSV, a JSON array or NDJSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

from peewee import Database

from ..db.connect import connected
from ..db.fields import to_isk
from ..errors import InvalidParameter
from .history import check_range, time_conditions
from .sqltext import ReadSql, as_datetime

FORMATS = ("csv", "json", "ndjson")
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}
BATCH = 2000
"""Rows read per query."""
EXPORT_COLUMNS = (
    "killmail_id",
    "kill_time",
    "character_id",
    "character_name",
    "role",
    "final_blow",
    "solo",
    "npc",
    "solar_system_id",
    "solar_system_name",
    "region_id",
    "region_name",
    "ship_type_id",
    "ship_type_name",
    "total_value",
    "attacker_count",
)
_SELECT = (
    "k.id, k.killmail_id, k.kill_time, k.related_character_id, k.related_character_name, "
    "k.character_role, k.final_blow, k.solo, k.npc, k.solar_system_id, k.solar_system_name, "
    "k.region_id, k.region_name, k.ship_type_id, k.ship_type_name, k.total_value, "
    "k.attacker_count"
)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidParameter("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def export_rows(
    db: Database,
    start: dt.date | None = None,
    end: dt.date | None = None,
    character_id: int | None = None,
    batch: int = BATCH,
) -> Iterator[dict[str, Any]]:
    """Every stored involvement (in the days, of the character) in storage order, as
    dicts keyed by `EXPORT_COLUMNS` (ISK as a two-place decimal string)."""
    check_range(start, end)
    sql = ReadSql(db)
    last = 0
    while True:
        params: list[Any] = [last]
        where = ["k.id > " + sql.p, *time_conditions(sql, start, end, params)]
        if character_id is not None:
            where.append(f"k.related_character_id = {sql.p}")
            params.append(character_id)
        params.append(batch)
        with connected(db):
            rows = db.execute_sql(
                f"SELECT {_SELECT} FROM killmails k WHERE {' AND '.join(where)} "
                f"ORDER BY k.id LIMIT {sql.p}",
                params,
            ).fetchall()
        for row in rows:
            value = row[15]
            yield {
                "killmail_id": int(row[1]),
                "kill_time": as_datetime(row[2]).isoformat().replace("+00:00", "Z"),
                "character_id": int(row[3]),
                "character_name": row[4],
                "role": row[5],
                "final_blow": bool(row[6]),
                "solo": bool(row[7]),
                "npc": bool(row[8]),
                "solar_system_id": row[9],
                "solar_system_name": row[10],
                "region_id": row[11],
                "region_name": row[12],
                "ship_type_id": row[13],
                "ship_type_name": row[14],
                "total_value": None if value is None else format(to_isk(str(value)), "f"),
                "attacker_count": int(row[16]),
            }
        if len(rows) < batch:
            return
        last = int(rows[-1][0])


def render(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The rows as text chunks of the format (`csv` with a header, a `json` array, or
    `ndjson`), a few hundred rows per chunk."""
    check_format(fmt)
    chunk: list[str] = []
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for n, row in enumerate(rows, 1):
            writer.writerow(row)
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        return
    if fmt == "json":
        yield "["
    for n, row in enumerate(rows):
        text = json.dumps(row, separators=(",", ":"))
        if fmt == "json":
            chunk.append(("," if n else "") + text)
        else:
            chunk.append(text + "\n")
        if len(chunk) >= 500:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk)
    if fmt == "json":
        yield "]\n"


def write_export(
    db: Database,
    out: io.TextIOBase | Any,
    fmt: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    character_id: int | None = None,
) -> int:
    """Write the export to a text stream; returns the number of rows."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in export_rows(db, start, end, character_id):
            count += 1
            yield row

    for piece in render(counted(), fmt):
        out.write(piece)
    return count
