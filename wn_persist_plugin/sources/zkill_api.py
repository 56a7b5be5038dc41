"""Client for zKillboard's per-character API: which killmails zKillboard has for a
character in a month, with their zkb blocks (and, since 2026-06-27, their ESI bodies).

`GET {base}/characterID/{id}/year/{Y}/month/{M}/page/{n}/` (see docs/zkillboard-api.md):
200 mails per page, killmail id descending; pages 1..100; a trailing slash, no query
string, no leading zeros. An invalid request is answered 200 with `{"error": "..."}`;
more than 40 of those from one address in 5 minutes is answered with a redirect to
`/api/blocked.json`. Answers are cached by zKillboard's CDN for an hour, and mails younger
than 300 s are left out.

Politeness: one session from `sources.http.make_session` (our User-Agent), at most one
request per `interval` seconds (`RequestPacer`, shared by every thread using the client),
a 429's `Retry-After` waited out before the next request, 5xx and network errors retried
with backoff, redirects never followed. Failures raise the `SourceError` family with
one-line messages.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from ..errors import SourceError, SourceUnavailable
from ..killmails.parse import parse_time
from ..settings import DEFAULT_ZKILLBOARD_API_URL
from .http import (
    DEFAULT_TIMEOUT,
    NO_RETRIES,
    Backoff,
    make_session,
    retry_after_seconds,
    status_cause,
    transport_cause,
)

log = logging.getLogger(__name__)

SERVICE = "zKillboard API"

PAGE_SIZE = 200
"""Mails per page (zKillboard's MongoFilter caps its limit at 200)."""
MAX_PAGE = 100
"""The last page zKillboard serves (`page` > 100 is an error)."""
FIRST_YEAR = 2007
"""The first `year` zKillboard accepts."""
MIN_INTERVAL = 1.05
"""Seconds between two requests: at most one a second, with 50 ms to spare for requests
that reach zKillboard closer together than they left (network jitter)."""
YOUNG_SLACK = 20
"""zKillboard drops mails younger than 300 s from a page after paging: a page of the
current month this close to full may be short only for that reason, so the next page is
read too."""
MAX_RATE_LIMITED = 20
"""429s in a row for one request before giving up."""
DEFAULT_MAX_WAIT = 300.0
"""Longest `Retry-After` waited out; a longer one counts as unavailable."""


@dataclass(frozen=True, slots=True)
class ZkillEntry:
    """One mail zKillboard lists for a character."""

    killmail_id: int
    hash: str | None
    zkb: Mapping[str, Any]
    body: Mapping[str, Any] | None = None
    """The ESI killmail, when the API sent it (since 2026-06-27); None for the old
    `{killmail_id, zkb}` shape."""
    kill_time: dt.datetime | None = None
    """`killmail_time` of the body (aware UTC); None without a body."""

    def envelope(self) -> dict[str, Any]:
        """The mail as the ingest path reads it (needs `body`)."""
        return {
            "killmail_id": self.killmail_id,
            "hash": self.hash,
            "esi": self.body,
            "zkb": self.zkb,
        }


class RequestPacer:
    """At most one request per `interval` seconds across threads; `hold(seconds)` keeps
    the next request back (a 429's `Retry-After`). `sleep` and `clock` are injectable."""

    def __init__(
        self,
        interval: float = MIN_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self.requests = 0
        """Requests let through."""
        self.waited = 0.0
        """Seconds spent waiting, in total."""

    def wait(self) -> None:
        """Block until the next request may go out, and reserve its slot."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + self.interval
            self.requests += 1
            delay = at - now
            self.waited += delay
        if delay > 0:
            self._sleep(delay)

    def hold(self, seconds: float) -> None:
        """No request before `seconds` from now."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


def months_between(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    """The calendar months (year, month) overlapping `start..end`, newest first."""
    out: list[tuple[int, int]] = []
    year, month = end.year, end.month
    while (year, month) >= (start.year, start.month):
        out.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def page_path(character_id: int, year: int, month: int, page: int) -> str:
    """`characterID/{id}/year/{Y}/month/{M}/[page/{n}/]`: no leading zeros, a trailing
    slash, page 1 left out (zKillboard caches each URL; the shortest is the common one)."""
    path = f"/characterID/{int(character_id)}/year/{int(year)}/month/{int(month)}/"
    if page > 1:
        path += f"page/{int(page)}/"
    return path


def _entry(item: Any) -> ZkillEntry | None:
    """One item of a page, in either shape; None when it has no usable id and zkb."""
    if not isinstance(item, Mapping):
        return None
    raw_id = item.get("killmail_id", item.get("killID"))
    zkb = item.get("zkb")
    try:
        killmail_id = int(raw_id)
    except (TypeError, ValueError):
        return None
    if killmail_id <= 0 or not isinstance(zkb, Mapping):
        return None
    hash_ = zkb.get("hash")
    body: Mapping[str, Any] | None = None
    kill_time = None
    if "victim" in item and "killmail_time" in item:
        body = {k: v for k, v in item.items() if k != "zkb"}
        try:
            kill_time = parse_time(item["killmail_time"])
        except ValueError:
            body = None
    return ZkillEntry(killmail_id, str(hash_) if hash_ else None, zkb, body, kill_time)


class ZkillApiClient:
    """zKillboard's API for one process: one session, one pacer (thread-safe).

    `interval` (seconds between requests; the default is zKillboard's 1/s), `sleep` and
    `clock` exist for tests; `contact` goes into the User-Agent."""

    def __init__(
        self,
        base_url: str = DEFAULT_ZKILLBOARD_API_URL,
        *,
        contact: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        interval: float = MIN_INTERVAL,
        max_retries: int = 3,
        max_wait: float = DEFAULT_MAX_WAIT,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.backoff = backoff or Backoff(first=2.0, cap=60.0)
        self.pacer = RequestPacer(interval, clock=clock, sleep=sleep)
        self.session = make_session(
            contact, timeout=timeout, retries=NO_RETRIES, pace=self.pacer.wait
        )
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self.rate_limited = 0
        """429s received."""
        self.malformed = 0
        """Items of a page skipped for want of an id or zkb block."""

    @property
    def requests(self) -> int:
        """Requests sent so far."""
        return self.pacer.requests

    def close(self) -> None:
        self.session.close()

    # -- one page --------------------------------------------------------------------------

    def page(self, character_id: int, year: int, month: int, page: int = 1) -> list[Any]:
        """One page of the character's mails in a month, as decoded (a list). Raises
        `SourceUnavailable` (no answer, 5xx after retries, 429 waits too long, blocked)
        or `SourceError` (an `{"error"}` answer, another refusal, a body not a list)."""
        if not 1 <= page <= MAX_PAGE:
            raise ValueError(f"page {page} is out of range (1..{MAX_PAGE})")
        path = page_path(character_id, year, month, page)
        answer = self._get(path)
        if isinstance(answer, Mapping) and "error" in answer:
            raise SourceError(
                f"{SERVICE}: {path}: {' '.join(str(answer['error']).split())[:200]}", 200
            )
        if not isinstance(answer, list):
            raise SourceError(f"{SERVICE}: {path}: answer is not a list", 200)
        return answer

    def _get(self, path: str) -> Any:
        url = self.base_url + path
        attempt = limited = 0
        while True:
            try:
                with self.session.get(url, timeout=self.timeout, allow_redirects=False) as response:
                    status = response.status_code
                    if status == 200:
                        try:
                            return response.json()
                        except ValueError:
                            cause = "HTTP 200 with a body that is not JSON"
                    elif status == 429:
                        limited += 1
                        self.rate_limited += 1
                        wait = retry_after_seconds(
                            response.headers.get("Retry-After"), default=MIN_INTERVAL, cap=1e9
                        )
                        if wait > self.max_wait or limited >= MAX_RATE_LIMITED:
                            raise SourceUnavailable(
                                f"{SERVICE}: {path}: HTTP 429, asked to wait {wait:.0f} s "
                                f"({limited} in a row); giving up for now",
                                status,
                            )
                        log.info(
                            "%s: %s: HTTP 429; waiting %.0f s (Retry-After)", SERVICE, path, wait
                        )
                        self.pacer.hold(wait)
                        continue
                    elif 300 <= status < 400:
                        where = response.headers.get("Location", "?")
                        raise SourceUnavailable(
                            f"{SERVICE}: {path}: HTTP {status} to {where} (zKillboard blocks an "
                            "address after more than 40 refused requests in 5 minutes)",
                            status,
                        )
                    elif status >= 500:
                        cause = f"HTTP {status}" + (
                            f" ({_text(response)})" if _text(response) else ""
                        )
                    else:
                        detail = _text(response)
                        message = (
                            status_cause(response) if not detail else f"HTTP {status} ({detail})"
                        )
                        raise SourceError(f"{SERVICE}: {path}: {message}", status)
            except requests.RequestException as exc:
                cause = transport_cause(exc, self.timeout)
            limited = 0
            attempt += 1
            if attempt > self.max_retries:
                raise SourceUnavailable(f"{SERVICE}: {path}: {cause} (after {attempt} tries)")
            wait = self.backoff.delay(attempt - 1)
            log.info(
                "%s: %s: %s; retry %d of %d in %.0f s",
                SERVICE,
                path,
                cause,
                attempt,
                self.max_retries,
                wait,
            )
            self.pacer.hold(wait)

    # -- a character's range ---------------------------------------------------------------

    def killmails(self, character_id: int, start: dt.date, end: dt.date) -> Iterator[ZkillEntry]:
        """The character's mails in the months overlapping `start..end`, newest first,
        each once. Pages are read until a short one (fewer than 200 mails) or, when the
        mails carry their `killmail_time`, until a page whose mails all precede `start`.
        Mails outside `start..end` may be yielded (the caller filters by `kill_time`)."""
        seen: set[int] = set()
        start = max(start, dt.date(FIRST_YEAR, 1, 1))
        current = self._today()
        for year, month in months_between(start, min(end, current)):
            for number in range(1, MAX_PAGE + 1):
                items = self.page(character_id, year, month, number)
                older = True
                for item in items:
                    entry = _entry(item)
                    if entry is None:
                        self.malformed += 1
                        log.warning(
                            "%s: character %d %d-%02d page %d: an item without a killmail id "
                            "and zkb block; skipped",
                            SERVICE, character_id, year, month, number,
                        )  # fmt: skip
                        continue
                    if entry.kill_time is None or entry.kill_time.date() >= start:
                        older = False
                    if entry.killmail_id not in seen:
                        seen.add(entry.killmail_id)
                        yield entry
                if items and older:
                    return  # every later page and month is older still
                this_month = (year, month) == (current.year, current.month)
                if len(items) < (PAGE_SIZE - YOUNG_SLACK if this_month else PAGE_SIZE):
                    break
            else:
                log.warning(
                    "%s: character %d %d-%02d: %d pages of %d mails, zKillboard's last; older "
                    "mails of that month are not listed",
                    SERVICE, character_id, year, month, MAX_PAGE, PAGE_SIZE,
                )  # fmt: skip


def _text(response: requests.Response) -> str:
    """The first line of a short text body (zKillboard's 403 and 503 explain themselves)."""
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - an unreadable body says nothing
        return ""
    if text.lstrip().startswith(("{", "[")):
        return ""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    return line[:120]
