"""Client for zKillboard's history day files: `GET {base}/YYYYMMDD.json` gives the
day's `{"killmail_id": "hash", ...}` (no bodies, no values; a day is complete only the
next morning).

The session comes from `sources.http.make_session`: our User-Agent, a timeout, and
connection errors and 5xx retried by urllib3 with backoff (honouring `Retry-After`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from ..errors import SourceError, SourceNotFound, SourceUnavailable
from .http import DEFAULT_TIMEOUT, RETRY_STATUSES, make_session, status_cause, transport_cause

SERVICE = "zKillboard history"


class ZkillHistoryClient:
    """Fetches history day files. Without `session`, one is made by `make_session`
    (our User-Agent with `contact`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        contact: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or make_session(contact, timeout=timeout)

    def day(self, day: dt.date) -> Any:
        """The day's file, decoded (normally a `killmail_id -> hash` object).

        Raises `SourceNotFound` (404: no file for that day), `SourceUnavailable` (no
        answer, 5xx after the session's retries, 429) or `SourceError` (any other status,
        a body that is not JSON); every message is one line naming the day."""
        what = f"{day:%Y%m%d}.json"
        try:
            with self.session.get(f"{self.base_url}/{what}", timeout=self.timeout) as response:
                status = response.status_code
                if status == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise SourceError(f"{SERVICE}: {what}: body is not JSON", status) from None
                message = f"{SERVICE}: {what}: {status_cause(response)}"
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"{SERVICE}: {what}: {transport_cause(exc, self.timeout)}"
            ) from None
        if status == 404:
            raise SourceNotFound(message, status)
        if status == 429 or status in RETRY_STATUSES:
            raise SourceUnavailable(message, status)
        raise SourceError(message, status)
