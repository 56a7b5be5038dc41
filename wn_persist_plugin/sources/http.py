"""How wn-persist talks HTTP: one session factory, one backoff, one-line failure causes.

`make_session()` returns a `requests.Session` configured the same way for every outside
service (ESI, zKillboard R2Z2 and history, the Wanderer map API, the static data dump):

- `User-Agent: wn-persist/<version> (+<project URL>; <contact>)`, set by assignment (a
  plain session already carries `python-requests/x`, so `setdefault` would do nothing);
  the contact comes from the `USER_AGENT_CONTACT` setting;
- `Accept: application/json` unless the caller asks for something else;
- a default timeout on every request, applied by the transport adapter (requests has no
  session-wide timeout), so a call without `timeout=` never waits forever;
- retries of connection errors, read errors (idempotent methods) and 5xx answers through
  urllib3's `Retry` with exponential backoff; a 429 or 503 with `Retry-After` is retried
  after that wait, unless it asks for more than `RETRY_AFTER_CAP`, which ends the
  retries and hands the answer to the client; each retry is one short WARNING line
  (`<host>: <cause>; retry n of N in S s`), the same failure of the same host at most
  once a minute (`RETRY_LOG_INTERVAL`), and urllib3's own multi-line "Retrying (...)"
  warnings are filtered out;
- at most `DEFAULT_MAX_REDIRECTS` redirects;
- an optional `pace()` called before every request the adapter sends, each redirect hop
  included, for clients that must stay under a rate (such a session has no urllib3
  retries: they happen inside one send, out of `pace`'s sight).

Clients with a policy of their own (ESI's error limit, R2Z2's 404-wait and pacing, the
map refreshed on the host's schedule) ask for `retries=NO_RETRIES` and keep their loop,
using `Backoff` and `retry_after_seconds` from here. Failures become one-line messages
through `transport_cause` / `status_cause`, raised as the `SourceError` family.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import importlib.metadata
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ResponseError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from .. import __version__
from ..redact import first_line
from ..throttle import Throttle

log = logging.getLogger(__name__)

PRODUCT = "wn-persist"
"""The product token of the User-Agent."""
DISTRIBUTION = "wn-persist-plugin"
"""The installed distribution whose metadata may name the project's home page."""
ABOUT = "killmail history for WandererNotifier groups"
"""Said in the User-Agent instead of a URL when the package metadata names none."""

DEFAULT_TIMEOUT = 10.0
"""Seconds to connect, and seconds to wait for each read, when the caller names none."""
DEFAULT_RETRIES = 3
"""Retries after the first attempt, for connection errors, read errors and 5xx."""
NO_RETRIES = 0
"""For clients whose own loop decides when to try again."""
RETRY_STATUSES = frozenset({500, 502, 503, 504})
"""Answers retried by the session; others (404, 429, ...) go back to the client."""
RETRY_AFTER_CAP = 60.0
"""Longest `Retry-After` the session sleeps for on its own."""
DEFAULT_MAX_REDIRECTS = 5
JSON = "application/json"
RETRY_LOG_INTERVAL = 60.0
"""Seconds before the same failure of the same host is logged again."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `first` seconds after the first failure, doubling each time,
    never more than `cap`."""

    first: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (0 for the first)."""
        return min(self.cap, self.first * 2.0 ** min(max(attempt, 0), 32))


DEFAULT_BACKOFF = Backoff()


def _project_url() -> str | None:
    try:
        meta = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for home in meta.get_all("Home-page") or []:
        if home.strip().lower() not in ("", "unknown"):
            return home.strip()
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository") and url:
            return url.strip()
    return None


PROJECT_URL = _project_url()
"""The project's home page, from the package metadata (`url` in setup.cfg); None if unset."""


def user_agent(contact: str | None = None) -> str:
    """`wn-persist/<version> (+<project URL>; <contact>)`. `contact` (an e-mail or URL, from
    `USER_AGENT_CONTACT`) lets zKillboard and CCP reach the operator; line breaks and runs
    of spaces in it are collapsed so it cannot break the header."""
    parts = [f"+{PROJECT_URL}" if PROJECT_URL else ABOUT]
    cleaned = " ".join((contact or "").split())
    if cleaned:
        parts.append(cleaned)
    return f"{PRODUCT}/{__version__} ({'; '.join(parts)})"


def retry_after_seconds(value: str | None, default: float, cap: float) -> float:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), at most `cap`;
    `default` when the header is absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        seconds = parsed.timestamp() - time.time()
    return min(max(seconds, 0.0), cap)


class _UrllibRetryWarnings(logging.Filter):
    """Drops urllib3's own "Retrying (Retry(total=...)) after connection broken by ..."
    lines: `SessionRetry` says the same in one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying (")


URLLIB3_RETRY_FILTER = _UrllibRetryWarnings()
_retry_logs: dict[str, Throttle] = {}
_retry_logs_lock = threading.Lock()


def _retry_log(host: str) -> Throttle:
    with _retry_logs_lock:
        throttle = _retry_logs.get(host)
        if throttle is None:
            throttle = _retry_logs[host] = Throttle(RETRY_LOG_INTERVAL)
        return throttle


def _urllib3_cause(error: Exception | None, response: Any) -> str:
    if response is not None:
        return f"HTTP {response.status}"
    if error is None:
        return "no answer"
    return transport_cause(requests.ConnectionError(error))


class SessionRetry(Retry):
    """urllib3's `Retry` that never sleeps longer than `RETRY_AFTER_CAP` (an answer whose
    `Retry-After` asks for more ends the retries and goes back to the client) and says
    each retry in one short line, throttled per host and cause."""

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if response is not None and self.respect_retry_after_header:
            value = response.headers.get("Retry-After")
            if value and retry_after_seconds(value, default=0.0, cap=math.inf) > RETRY_AFTER_CAP:
                reason = ResponseError(f"Retry-After {value.strip()} is longer than we wait")
                raise MaxRetryError(_pool, url or "", reason)
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        self._log_retry(new, error, response, _pool)
        return new

    def _log_retry(self, new: Retry, error: Exception | None, response: Any, pool: Any) -> None:
        host = str(getattr(pool, "host", None) or "remote host")
        port = getattr(pool, "port", None)
        if port is not None and port not in (80, 443):
            host = f"{host}:{port}"
        cause = _urllib3_cause(error, response)
        throttle = _retry_log(host)
        if not throttle.ready(cause):
            return
        others = throttle.take_suppressed()
        wait = new.get_backoff_time()
        if response is not None and new.respect_retry_after_header:
            wait = max(wait, new.get_retry_after(response) or 0.0)
        done = len(new.history)
        total = done + (new.total if isinstance(new.total, int) else 0)
        log.warning(
            "%s: %s; retry %d of %d in %.1f s%s",
            host,
            cause,
            done,
            total,
            wait,
            f" ({others} more failures since the last line)" if others else "",
        )


def make_retry(retries: int, backoff: Backoff = DEFAULT_BACKOFF) -> Retry:
    """The urllib3 retry policy: `retries` more attempts after connection errors, read
    errors (idempotent methods) and `RETRY_STATUSES`, waiting urllib3's backoff (none before
    the first retry, then `backoff.first` x 2, x 4, ... up to `backoff.cap`) or what
    `Retry-After` asks (429 and 503 too). After the last one the final answer is returned,
    not raised."""
    if retries <= 0:
        return SessionRetry(0, read=False)  # requests' own default: one attempt
    return SessionRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff.first,
        backoff_max=backoff.cap,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class SessionAdapter(HTTPAdapter):
    """An `HTTPAdapter` that applies `timeout` to requests sent without one and calls
    `pace()` before every request it sends (each redirect hop is a separate send)."""

    def __init__(
        self,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retries: Retry | None = None,
        pace: Callable[[], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.pace = pace
        super().__init__(max_retries=retries if retries is not None else make_retry(NO_RETRIES))

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self.pace is not None:
            self.pace()
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def mount_adapter(
    session: requests.Session,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: Backoff = DEFAULT_BACKOFF,
    pace: Callable[[], None] | None = None,
) -> SessionAdapter:
    """Mount one `SessionAdapter` for http:// and https:// on `session`. `pace` needs
    `retries=NO_RETRIES`: urllib3 retries inside one send, where `pace` cannot see them."""
    if pace is not None and retries != NO_RETRIES:
        raise ValueError("a paced session must leave retries to its client (NO_RETRIES)")
    adapter = SessionAdapter(timeout=timeout, retries=make_retry(retries, backoff), pace=pace)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return adapter


def make_session(
    contact: str | None = None,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: Backoff = DEFAULT_BACKOFF,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    accept: str | None = JSON,
    pace: Callable[[], None] | None = None,
) -> requests.Session:
    """A `requests.Session` with our User-Agent, `Accept` (None: requests' `*/*`), a default
    timeout, `retries` through urllib3 and at most `max_redirects` redirects; `pace` is
    called before every request sent on the wire (it needs `retries=NO_RETRIES`). One
    session per client."""
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    if URLLIB3_RETRY_FILTER not in urllib3_log.filters:
        urllib3_log.addFilter(URLLIB3_RETRY_FILTER)
    session = requests.Session()
    session.headers["User-Agent"] = user_agent(contact)
    if accept:
        session.headers["Accept"] = accept
    session.max_redirects = max_redirects
    mount_adapter(session, timeout=timeout, retries=retries, backoff=backoff, pace=pace)
    return session


# -- one-line causes ------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps (args, urllib3's `.reason`, cause, context)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            inner.append(reason)
        inner += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo.extend(inner)


def _seconds(timeout: float | tuple[float, float] | None, index: int) -> str:
    if timeout is None:
        return ""
    value = timeout[index] if isinstance(timeout, tuple) else timeout
    return f" after {value:g} s"


_CUT_OFF = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


def transport_cause(
    exc: requests.RequestException, timeout: float | tuple[float, float] | None = None
) -> str:
    """Why a request got no answer, in a few words: DNS lookup failed, connection refused,
    connect/read timed out, TLS error, connection closed, answer cut off, too many
    redirects. Never the multi-line urllib3 repr; secrets in URLs are masked."""
    if isinstance(exc, requests.TooManyRedirects):
        return f"too many redirects ({first_line(exc)})"
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timed out{_seconds(timeout, 0)}"
    if isinstance(exc, requests.ReadTimeout):
        return f"read timed out{_seconds(timeout, 1)}"
    chain = list(_chain(exc))
    if isinstance(exc, requests.exceptions.SSLError) or any(
        isinstance(e, ssl.SSLError) for e in chain
    ):
        root = next((e for e in chain if isinstance(e, ssl.SSLError)), exc)
        reason = getattr(root, "reason", None)
        return f"TLS error ({reason or type(root).__name__})"
    if any(isinstance(e, NameResolutionError | socket.gaierror) for e in chain):
        return "DNS lookup failed"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, Urllib3Timeout | TimeoutError) for e in chain):
        return f"read timed out{_seconds(timeout, 1)}"
    if isinstance(exc, _CUT_OFF) or any(isinstance(e, http.client.IncompleteRead) for e in chain):
        return "answer cut off mid-way"
    if any(isinstance(e, http.client.RemoteDisconnected | ConnectionResetError) for e in chain):
        return "connection closed without an answer"
    if any(isinstance(e, NewConnectionError) for e in chain):
        return "could not connect"
    if any(isinstance(e, ProtocolError) for e in chain):
        return "connection broken"
    return f"{type(exc).__name__}: {first_line(exc)}"[:200]


def status_cause(response: requests.Response, key: str = "error") -> str:
    """`HTTP <status>`, with the service's own one-line text when its JSON body has one
    under `key` (ESI's `{"error": "..."}`, Discord's `message`), at most 120 characters."""
    cause = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return cause
    detail = body.get(key) if isinstance(body, dict) else None
    if isinstance(detail, str) and detail.strip():
        cause += f" ({' '.join(detail.split())[:120]})"
    return cause
