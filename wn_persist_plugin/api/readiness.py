"""Readiness: does the database answer, is its schema current, when did each period type
last aggregate, where is the feed. `/readyz` reports it; no web stack needed here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from peewee import Database

from ..db import migrator
from ..db.connect import connected
from ..redact import first_line
from ..statistics.aggregation import PERIODS
from ..statistics.sqltext import as_datetime


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)


def last_aggregations(db: Database) -> dict[str, dict[str, Any]]:
    """Per period type: the last aggregation's start time and duration (None if never)."""
    rows = db.execute_sql(
        "SELECT period_type, last_run_at, last_run_seconds FROM statistics_watermarks"
    ).fetchall()
    found = {r[0]: (as_datetime(r[1]), r[2]) for r in rows}
    return {
        p: {
            "last_run_at": found[p][0] if p in found else None,
            "seconds": found[p][1] if p in found else None,
        }
        for p in PERIODS
    }


def check_readiness(
    db: Database, feed_status: Callable[[], Mapping[str, Any] | None] | None = None
) -> Readiness:
    """Ready when the database answers and no migration is pending."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        with connected(db):
            db.execute_sql("SELECT 1").fetchone()
            checks["database"] = {"ok": True}
            state = migrator.state(db)
            current = not state.pending
            checks["schema"] = {
                "ok": current,
                "version": state.version,
                "latest": state.latest,
            }
            ready = current
            if current:
                checks["aggregation"] = last_aggregations(db)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        try:
            db.close()
        except Exception:  # noqa: BLE001
            pass
        checks["database"] = {"ok": False, "error": first_line(exc)}
        ready = False
    if feed_status is not None:
        checks["feed"] = dict(feed_status() or {})
    checks["checked_at"] = dt.datetime.now(dt.UTC)
    return Readiness(ready, checks)
