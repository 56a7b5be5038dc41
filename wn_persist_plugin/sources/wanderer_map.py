"""Client for the Wanderer map API: the characters a map tracks.

`GET {MAP_URL}/api/maps/{slug}/tracked-characters` with `Authorization: Bearer {key}`
returns `{"data": [{"tracked": true, "character": {"eve_id": "2123019188", ...}}, ...]}`.
Only entries with `tracked: true` count; EVE ids arrive as strings and are compared as
integers. 401 means a bad token or an inactive map subscription, 403 that the map's
public API is disabled; each is said in one line. The API key is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from ..errors import MapUnavailable
from .http import NO_RETRIES, make_session, transport_cause

log = logging.getLogger(__name__)

SERVICE = "Wanderer map API"
STATUS_HINTS = {
    401: ": the API token (MAP_API_KEY) is wrong, or the map's subscription is inactive",
    403: ": the map's public API is disabled (turn it on in the map's settings)",
    404: ": no such map (check MAP_NAME and MAP_URL)",
}
"""What the map API means by each refusal (401: bad token or inactive subscription; 403:
the map's public API switched off)."""


@dataclass(frozen=True)
class TrackedList:
    """The map's tracked characters: the entries as the map sent them, and their ids."""

    entries: tuple[Mapping[str, Any], ...]
    ids: frozenset[int]


def _eve_id(entry: Any) -> int | None:
    if not isinstance(entry, Mapping) or entry.get("tracked") is not True:
        return None
    character = entry.get("character")
    if not isinstance(character, Mapping):
        return None
    raw = character.get("eve_id")
    if isinstance(raw, bool):
        return None
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def tracked_from_payload(payload: Any) -> TrackedList:
    """The tracked entries of a map API answer; raises MapUnavailable when it has no
    `data` list (an answer we cannot read must not empty the tracked list)."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), list):
        raise MapUnavailable(f"{SERVICE}: answer has no 'data' list")
    entries: dict[int, Mapping[str, Any]] = {}
    for entry in payload["data"]:
        eve_id = _eve_id(entry)
        if eve_id is not None:
            entries.setdefault(eve_id, entry)
    ordered = tuple(entries[k] for k in sorted(entries))
    return TrackedList(entries=ordered, ids=frozenset(entries))


class MapClient:
    """Fetches the tracked characters of one map.

    One request per `fetch()`, no retries of its own: the host refreshes on its schedule
    and keeps the last list meanwhile. Without `session`, one is made by `make_session`
    (our User-Agent with `contact`); the API key is sent per request, never stored in the
    session's headers."""

    def __init__(
        self,
        base_url: str,
        map_name: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        contact: str | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/api/maps/{quote(map_name, safe='')}/tracked-characters"
        self.timeout = timeout
        self.session = session or make_session(contact, timeout=timeout, retries=NO_RETRIES)
        self._auth = {"Authorization": f"Bearer {api_key}"}

    def fetch(self) -> TrackedList:
        """One request; raises MapUnavailable (one line, without the key) on any failure."""
        try:
            response = self.session.get(self.url, headers=self._auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MapUnavailable(f"{SERVICE}: {transport_cause(exc, self.timeout)}") from None
        with response:
            status = response.status_code
            if status != 200:
                # The body is not quoted: an error page might echo the request.
                hint = STATUS_HINTS.get(status, "")
                raise MapUnavailable(f"{SERVICE}: HTTP {status}{hint}", status)
            try:
                payload = response.json()
            except ValueError:
                raise MapUnavailable(f"{SERVICE}: HTTP 200 with a body that is not JSON") from None
        return tracked_from_payload(payload)
