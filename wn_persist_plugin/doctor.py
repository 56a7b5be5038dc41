"""`wn-persist doctor`: what a user runs when something is wrong.

`run_checks(settings)` checks, each on its own and each with a short timeout (so it
finishes offline too): the database (reachable, schema version, size), the Wanderer map
API (token valid, tracked characters), zKillboard's R2Z2 feed (sequence reachable, how
far the stored position lags), ESI (status, error limit left), the static data (imported,
age) and the settings (shown masked). Every result is a `Check`: ok or not, one line of
detail, and one line of advice when not ok.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from .db import migrator
from .db.connect import database_size, open_database
from .db.models import FeedState, UniverseSystem
from .enrichment.static_data import IMPORTED_KEY
from .errors import SourceError, WnPersistError
from .host.feed_state import load_sequence
from .redact import first_line, mask_url
from .settings import SETTINGS, Settings
from .sources.esi import EsiClient
from .sources.http import NO_RETRIES, make_session, status_cause, transport_cause
from .sources.wanderer_map import MapClient

DEFAULT_TIMEOUT = 5.0
"""Seconds each outside service gets to answer."""
OLD_STATIC_DATA_DAYS = 120
MAP_ADVICE = {
    401: "check MAP_API_KEY, and that the map's subscription is active",
    403: "turn on the map's public API in its settings",
    404: "check MAP_URL and MAP_NAME",
}


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, one line of detail, and one line of
    advice when it did not."""

    name: str
    ok: bool
    detail: str
    advice: str = ""


def _human_bytes(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def check_database(settings: Settings) -> tuple[Check, Any]:
    """Reachable, schema version, size; the open database too (None when unreachable)."""
    url = settings.masked_database_url
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///").split("?", 1)[0])
        if str(path) != ":memory:" and not path.is_file():
            # Connecting would create an empty file; say it is missing instead.
            return Check(
                "database",
                False,
                f"{url}: no such file",
                "run `wn-persist migrate` (or set DATABASE_URL)",
            ), None
    db = open_database(settings, bind=False)
    try:
        db.connect(reuse_if_open=True)
        state = migrator.state(db)
        size = database_size(db)
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        db.close()
        return Check(
            "database",
            False,
            f"{url}: {first_line(exc)}"[:300],
            "check DATABASE_URL (or POSTGRES_*) and that the database server is up",
        ), None
    detail = f"{url}: schema {state.version} of {state.latest}, {_human_bytes(size)}"
    if state.pending:
        return Check("database", False, detail, "run `wn-persist migrate`"), db
    return Check("database", True, detail), db


def check_map(settings: Settings, timeout: float) -> Check:
    config = settings.map
    if not config.configured:
        ids = len(settings.host.static_ids)
        return Check("map API", True, f"not configured ({ids} ids in TRACKED_CHARACTER_IDS)")
    assert config.url and config.name and config.api_key
    client = MapClient(
        config.url,
        config.name,
        config.api_key,
        timeout=timeout,
        contact=settings.user_agent_contact,
    )
    try:
        tracked = client.fetch()
    except SourceError as exc:
        advice = MAP_ADVICE.get(exc.status or 0, "check MAP_URL and that the map is reachable")
        return Check("map API", False, str(exc), advice)
    return Check("map API", True, f"token valid, {len(tracked.ids)} tracked characters")


def check_r2z2(settings: Settings, timeout: float, db: Any) -> Check:
    url = f"{settings.feed.base_url}/ephemeral/sequence.json"
    session = make_session(settings.user_agent_contact, timeout=timeout, retries=NO_RETRIES)
    advice = "check R2Z2_BASE_URL and this machine's internet access"
    try:
        with session.get(url, timeout=timeout) as response:
            if response.status_code != 200:
                return Check(
                    "R2Z2 feed", False, f"{mask_url(url)}: {status_cause(response)}", advice
                )
            body = response.json()
    except requests.RequestException as exc:
        return Check(
            "R2Z2 feed", False, f"{mask_url(url)}: {transport_cause(exc, timeout)}", advice
        )
    except ValueError:
        return Check("R2Z2 feed", False, f"{mask_url(url)}: body is not JSON", advice)
    finally:
        session.close()
    latest = body.get("sequence") if isinstance(body, dict) else None
    if not isinstance(latest, int) or isinstance(latest, bool):
        return Check("R2Z2 feed", False, f"{mask_url(url)}: no 'sequence' in the answer", advice)
    stored = None
    if db is not None:
        try:
            stored = load_sequence(db)
        except Exception:  # noqa: BLE001 - the database check reports it
            stored = None
    lag = "no stored position yet" if stored is None else f"lag {max(0, latest - stored)}"
    return Check("R2Z2 feed", True, f"sequence {latest}, {lag}")


def check_esi(settings: Settings, timeout: float) -> Check:
    quick = replace(settings.esi, timeout=timeout, max_retries=0, max_wait=0.0)
    client = EsiClient(quick, contact=settings.user_agent_contact)
    try:
        status = client.request("GET", "/status/")
    except SourceError as exc:
        return Check(
            "ESI", False, str(exc), "check ESI_BASE_URL; ESI may be down (daily 11:00 UTC)"
        )
    players = status.get("players") if isinstance(status, dict) else None
    left = client.error_limit_remain
    errors = "error limit unknown" if left is None else f"{left:.0f} errors left"
    return Check("ESI", True, f"up ({players} players online), {errors}")


def check_static_data(db: Any, now: dt.datetime) -> Check:
    advice = "run `wn-persist universe import --download`"
    if db is None:
        return Check("static data", False, "database unreachable", advice)
    try:
        with UniverseSystem.bind_ctx(db), FeedState.bind_ctx(db):
            systems = UniverseSystem.select().count()
            stamp = FeedState.get_or_none(FeedState.key == IMPORTED_KEY)
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        return Check("static data", False, first_line(exc)[:200], "run `wn-persist migrate`")
    if not systems:
        return Check("static data", False, "not imported (no solar systems)", advice)
    if stamp is None:
        return Check("static data", True, f"{systems} systems, import date unknown")
    days = (now - stamp.updated_at).days
    detail = f"{systems} systems, imported {days} days ago"
    if days > OLD_STATIC_DATA_DAYS:
        return Check(
            "static data", False, detail, f"older than {OLD_STATIC_DATA_DAYS} days: {advice}"
        )
    return Check("static data", True, detail)


def settings_lines(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value as shown) for every setting with a value; secrets masked."""
    lines = []
    for setting in SETTINGS:
        if setting.attribute is None:
            continue
        if setting.attribute == "database_url":
            lines.append((setting.name, settings.masked_database_url))
            continue
        value: Any = settings
        for part in setting.attribute.split("."):
            value = getattr(value, part)
        if value is None or value == ():
            continue
        shown = setting.kind.mask(value) if setting.secret else str(value)
        lines.append((setting.name, shown.strip("'")))
    return lines


def run_checks(
    settings: Settings,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[Check]:
    """Every check, in the order shown; none raises."""
    checks = [Check("settings", True, f"valid ({len(settings_lines(settings))} values)")]
    database, db = check_database(settings)
    checks.append(database)
    try:
        for check in (
            lambda: check_map(settings, timeout),
            lambda: check_r2z2(settings, timeout, db),
            lambda: check_esi(settings, timeout),
            lambda: check_static_data(db, now()),
        ):
            try:
                checks.append(check())
            except WnPersistError as exc:  # a check that failed in an unplanned way
                checks.append(Check("check", False, first_line(exc), "run with -v for details"))
    finally:
        if db is not None:
            db.close()
    return checks
