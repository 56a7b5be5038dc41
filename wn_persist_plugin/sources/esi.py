"""A small client for the ESI endpoints enrichment and backfill use.

Universe (`/universe/systems/{id}/`, `/universe/constellations/{id}/`,
`/universe/regions/{id}/`), bulk names (`POST /universe/names/`, up to 1,000 ids a call),
killmails (`/killmails/{id}/{hash}/`) and market prices (`/markets/prices/`).

Requests go to ESI's root (no `/latest`) with `X-Compatibility-Date` (ESI versions by
date). ESI's own limits are obeyed: the rate-limit groups' token buckets, by one shared
`RateLimitPacer` reading the `X-Ratelimit-*` headers (a group's 429 holds the group for
its `Retry-After`, however long, and is not counted as a failed try); the error limit
(`X-ESI-Error-Limit-Remain` / `-Reset`: when few errors remain, wait for the window to
reset; a 420 means the limit was hit), any other 429 with
`Retry-After`, 5xx, timeouts and other network errors retried with exponential backoff
(`sources.http.Backoff`). A wait longer than `max_wait`, or retries used up, raise
`EsiUnavailable`: callers treat ESI as down and try again later; nothing waits forever.
The session comes from `sources.http.make_session` (our User-Agent, JSON, timeout).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from peewee import chunked

from ..db.fields import to_id
from ..errors import EsiError, EsiNotFound, EsiUnavailable
from ..settings import EsiSettings
from ..throttle import Throttle
from .http import (
    NO_RETRIES,
    RETRY_LOG_INTERVAL,
    Backoff,
    make_session,
    retry_after_seconds,
    status_cause,
    transport_cause,
)
from .ratelimit import RateLimitPacer

log = logging.getLogger(__name__)

NAMES_BATCH = 1000
"""ESI's `POST /universe/names/` takes at most 1,000 ids."""
ERROR_LIMIT_FLOOR = 10
"""When ESI says this few errors remain in its window, wait for the window to reset."""
ERROR_WINDOW = 60.0
"""Seconds of ESI's error-limit window, when a 420 does not say when it resets."""
SERVICE = "ESI"
MAX_RATE_LIMITED = 20
"""A request answered 429 by its rate-limit group this many times in a row gives up."""
COMPATIBILITY_HEADER = "X-Compatibility-Date"
MARKET_PRICES_PATH = "/markets/prices/"
_ROUTE_PARTS = re.compile(r"/(?:\d+|[0-9a-fA-F]{16,})(?=/|$)")


def route_of(path: str) -> str:
    """The route a path belongs to, ids and hashes replaced: `/killmails/{}/{}/`."""
    return _ROUTE_PARTS.sub("/{}", path)


@dataclass
class NamesResult:
    names: dict[int, tuple[str, str]] = field(default_factory=dict)
    """id -> (name, category) for the ids ESI resolved."""
    unknown: set[int] = field(default_factory=set)
    """Ids ESI does not know (it answered 404 for them alone)."""


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class _RateLimited:
    """A 429 of a rate-limit group: the pacer holds the group for `wait` seconds."""

    wait: float


@dataclass(frozen=True)
class _TryAgain:
    """An answer worth another attempt after `wait` seconds."""

    wait: float
    reason: str


class EsiClient:
    """Thread-safe ESI client (one session, shared error-limit state).

    The session comes from `make_session` without urllib3 retries: every attempt must be
    seen here, since each error answer costs ESI's error limit. `contact` goes into the
    User-Agent of the session made here (a session handed in is used as it is)."""

    def __init__(
        self,
        settings: EsiSettings | None = None,
        *,
        session: requests.Session | None = None,
        contact: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 1.0,
        pacer: RateLimitPacer | None = None,
    ) -> None:
        self.settings = settings or EsiSettings()
        self.session = session or make_session(
            contact, timeout=self.settings.timeout, retries=NO_RETRIES
        )
        self.session.headers[COMPATIBILITY_HEADER] = self.settings.compatibility_date.isoformat()
        self.pacer = pacer or RateLimitPacer()
        self._sleep = sleep
        self._backoff = Backoff(first=backoff, cap=math.inf)  # max_wait decides when to stop
        self._lock = threading.Lock()
        self._errors_remain: float | None = None
        self._reset_at: float | None = None
        self._wait_log = Throttle(RETRY_LOG_INTERVAL)

    @property
    def error_limit_remain(self) -> float | None:
        """Errors ESI said are left in its error-limit window (None before it said)."""
        with self._lock:
            return self._errors_remain

    # -- transport ---------------------------------------------------------------------

    def _wait(self, seconds: float, why: str, what: str) -> None:
        if seconds > self.settings.max_wait:
            raise EsiUnavailable(
                f"{SERVICE}: {what}: asked to wait {seconds:.0f} s ({why}); giving up for now"
            )
        if self._wait_log.ready(why):
            others = self._wait_log.take_suppressed()
            more = f"; {others} more waits since the last line" if others else ""
            log.info("ESI: %s: waiting %.1f s before the next try (%s%s)", what, seconds, why, more)
        self._sleep(max(0.0, seconds))

    def _respect_error_limit(self, what: str) -> None:
        with self._lock:
            remain, reset_at = self._errors_remain, self._reset_at
        if remain is not None and remain <= ERROR_LIMIT_FLOOR and reset_at is not None:
            wait = reset_at - time.monotonic()
            if wait > 0:
                self._wait(wait, f"error limit: {remain:.0f} errors left", what)
            with self._lock:
                self._errors_remain = None

    def _note_error_limit(self, headers: Mapping[str, str]) -> None:
        remain = _float_header(headers, "X-ESI-Error-Limit-Remain")
        reset = _float_header(headers, "X-ESI-Error-Limit-Reset")
        if remain is None:
            return
        with self._lock:
            self._errors_remain = remain
            self._reset_at = time.monotonic() + (reset if reset is not None else ERROR_WINDOW)

    def _answer(self, response: requests.Response, what: str, attempt: int, route: str) -> Any:
        """The decoded JSON of a 200; `_TryAgain` for answers worth retrying; raises
        `EsiNotFound` (404) or `EsiError` (other refusals)."""
        headers = response.headers
        self._note_error_limit(headers)
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError:
                return _TryAgain(self._backoff.delay(attempt), "HTTP 200 with a body not JSON")
        if status == 404:
            raise EsiNotFound(f"{SERVICE}: {what}: {status_cause(response)}", status)
        if status == 420:
            reset = _float_header(headers, "X-ESI-Error-Limit-Reset")
            with self._lock:
                self._errors_remain = None  # the window resets while we wait
            return _TryAgain(ERROR_WINDOW if reset is None else reset, "HTTP 420 error limited")
        if status == 429:
            wait = retry_after_seconds(
                headers.get("Retry-After"), default=self._backoff.delay(attempt), cap=math.inf
            )
            if headers.get("X-Ratelimit-Group") and self.pacer.hold(route, wait):
                return _RateLimited(wait)
            return _TryAgain(wait, "HTTP 429 too many requests")
        if status >= 500:
            return _TryAgain(self._backoff.delay(attempt), status_cause(response))
        raise EsiError(f"{SERVICE}: {what}: {status_cause(response)}", status)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request with ESI's limits and retries; return the decoded JSON."""
        url = self.settings.base_url + path
        what = f"{method} {path}"
        route = route_of(path)
        tries = self.settings.max_retries + 1
        last = "no attempt made"
        attempt = limited = 0
        while attempt < tries:
            self._respect_error_limit(what)
            ticket = self.pacer.acquire(route)
            answered = False
            try:
                with self.session.request(
                    method, url, json=body, timeout=self.settings.timeout
                ) as response:
                    self.pacer.release(route, ticket, response.status_code, response.headers)
                    answered = True
                    answer = self._answer(response, what, attempt, route)
            except requests.RequestException as exc:
                # Any transport failure (refused, timed out, a body cut off mid-way, ...)
                # is retried, then ESI counts as unavailable.
                answer = _TryAgain(
                    self._backoff.delay(attempt), transport_cause(exc, self.settings.timeout)
                )
            finally:
                if not answered:  # no answer: free the tokens held for it
                    self.pacer.release(route, ticket, None, {})
            if isinstance(answer, _RateLimited):
                limited += 1
                if limited >= MAX_RATE_LIMITED:
                    raise EsiUnavailable(
                        f"{SERVICE}: {what}: HTTP 429 rate limited {limited} times in a row"
                    )
                log.info("ESI: %s rate limited; waiting %.0f s (Retry-After)", what, answer.wait)
                continue  # the pacer holds the group until Retry-After has passed
            limited = 0
            attempt += 1
            if not isinstance(answer, _TryAgain):
                return answer
            last = answer.reason
            if attempt < tries:
                self._wait(answer.wait, last, what)
        raise EsiUnavailable(f"{SERVICE}: {what}: {last} (after {tries} tries)")

    # -- endpoints ---------------------------------------------------------------------

    def system(self, system_id: int) -> dict[str, Any]:
        return self.request("GET", f"/universe/systems/{int(system_id)}/")

    def constellation(self, constellation_id: int) -> dict[str, Any]:
        return self.request("GET", f"/universe/constellations/{int(constellation_id)}/")

    def region(self, region_id: int) -> dict[str, Any]:
        return self.request("GET", f"/universe/regions/{int(region_id)}/")

    def killmail(self, killmail_id: int, hash_: str) -> dict[str, Any]:
        return self.request("GET", f"/killmails/{int(killmail_id)}/{hash_}/")

    def market_prices(self) -> dict[int, Decimal | None]:
        """`GET /markets/prices/`: type id -> average price in ISK (None for a type ESI
        lists without `average_price`). ESI answers one array of `{type_id,
        average_price?, adjusted_price?}` for every type with a price, refreshed about
        once an hour (the route is cached on ESI's side); `adjusted_price` is not used.
        An answer not of that shape raises `EsiError`."""
        answer = self.request("GET", MARKET_PRICES_PATH)
        if not isinstance(answer, list):
            raise EsiError(
                f"{SERVICE}: GET {MARKET_PRICES_PATH}: expected an array, "
                f"got {type(answer).__name__}"
            )
        prices: dict[int, Decimal | None] = {}
        for entry in answer:
            try:
                type_id = to_id(entry["type_id"])
                raw = entry.get("average_price")
                price = None if raw is None else Decimal(str(raw))
            except (TypeError, KeyError, ValueError, AttributeError, InvalidOperation):
                raise EsiError(
                    f"{SERVICE}: GET {MARKET_PRICES_PATH}: not a price entry: {entry!r:.80}"
                ) from None
            if price is not None and (not price.is_finite() or price < 0):
                price = None  # nonsense is no price
            prices[type_id] = price
        return prices

    def names(self, ids: Iterable[int]) -> NamesResult:
        """Resolve ids in batches of 1,000. ESI answers 404 for a whole batch when one id
        is unknown; such a batch is split in halves until the unknown ids are isolated."""
        unique = sorted({int(i) for i in ids})
        result = NamesResult()
        for batch in chunked(unique, NAMES_BATCH):
            self._names_batch(batch, result)
        return result

    def _names_batch(self, ids: list[int], result: NamesResult) -> None:
        try:
            answer = self.request("POST", "/universe/names/", ids)
        except EsiNotFound:
            if len(ids) == 1:
                result.unknown.add(ids[0])
                return
            middle = len(ids) // 2
            self._names_batch(ids[:middle], result)
            self._names_batch(ids[middle:], result)
            return
        for entry in answer:
            result.names[int(entry["id"])] = (str(entry["name"]), str(entry["category"]))
        # An id ESI silently left out is unknown too.
        result.unknown.update(i for i in ids if i not in result.names)
