"""Client for EVE Ref's daily killmail archives: every mail zKillboard knows of a day, as
ESI returned it, in one file.

`GET {EVEREF_BASE_URL}/killmails/YYYY/killmails-YYYY-MM-DD.tar.bz2` (default
`https://data.everef.net`): a tar archive with one ESI killmail JSON per member (no hash,
no zkb block, no ISK values). Files are updated in place while a day is recent. One
request brings a whole day, which ESI's killmail rate limit would take hours to give.

The session comes from `sources.http.make_session`: our User-Agent, a timeout per read,
connection errors and 5xx retried with backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import requests

from ..errors import SourceError, SourceNotFound, SourceUnavailable
from ..redact import mask_url
from .http import RETRY_STATUSES, make_session, status_cause, transport_cause

log = logging.getLogger(__name__)

SERVICE = "EVE Ref"
DOWNLOAD_TIMEOUT = 60.0
"""Seconds to connect, and to wait for each piece of the archive."""
CHUNK = 1 << 16


def archive_path(day: dt.date) -> str:
    """`/killmails/YYYY/killmails-YYYY-MM-DD.tar.bz2`."""
    return f"/killmails/{day:%Y}/killmails-{day:%Y-%m-%d}.tar.bz2"


class EveRefClient:
    """Downloads EVE Ref's daily archives. Without `session`, one is made by
    `make_session` (our User-Agent with `contact`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DOWNLOAD_TIMEOUT,
        session: requests.Session | None = None,
        contact: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or make_session(contact, timeout=timeout, accept=None)

    def url(self, day: dt.date) -> str:
        return self.base_url + archive_path(day)

    def download(self, day: dt.date, target: Path) -> None:
        """Stream the day's archive into `target` (removed again on failure).

        Raises `SourceNotFound` (404: no archive for that day yet), `SourceUnavailable`
        (no answer, 5xx, 429) or `SourceError` (any other status); one line each."""
        what = f"{SERVICE}: {mask_url(self.url(day))}"
        try:
            with self.session.get(self.url(day), stream=True, timeout=self.timeout) as response:
                status = response.status_code
                if status != 200:
                    message = f"{what}: {status_cause(response)}"
                    if status == 404:
                        raise SourceNotFound(message, status)
                    if status == 429 or status in RETRY_STATUSES:
                        raise SourceUnavailable(message, status)
                    raise SourceError(message, status)
                with target.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=CHUNK):
                        out.write(chunk)
        except requests.RequestException as exc:
            target.unlink(missing_ok=True)
            raise SourceUnavailable(f"{what}: {transport_cause(exc, self.timeout)}") from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        log.info("downloaded %s", what)
