"""Client for zKillboard's R2Z2 feed: `sequence.json`, then each sequence in turn.

Protocol (see docs/standalone.md): `GET {base}/ephemeral/sequence.json` gives the latest
sequence; `GET {base}/ephemeral/{N}.json` one killmail object. 404 = not published yet:
wait (about 6 s) and ask for the same N again. 429 carries `Retry-After`. Every request
to the feed goes through one limiter that spaces them evenly (GCRA with a burst of one,
from pyrate-limiter), so no one-second window ever holds more than the configured rate.

Failures (5xx, timeouts, connection errors, a redirect loop, a body that is not a JSON
object such as a proxy's HTML error page) are transient: logged in one line (an unchanged
failure at most once a minute) and retried with exponential backoff
(`sources.http.Backoff`) for as long as they last; nothing here raises into the caller.
Waits end early when the caller's stop event is set. Only a sequence that keeps answering
with a well-formed object that is not a usable killmail (`MalformedKillmail`) for at least
`UNUSABLE_ATTEMPTS` attempts and `UNUSABLE_SECONDS` seconds is skipped; the delivery
after it names it in `unusable`, for the host to record.

The session comes from `sources.http.make_session` without urllib3 retries, and the
limiter sits in its transport adapter: every request on the wire (redirect hops included)
waits for the limiter, and only this module's loop decides to try again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from pyrate_limiter import Duration, Limiter, Rate, SingleBucketFactory, StateBucket

from ..errors import MalformedKillmail
from ..killmails.parse import parse
from ..throttle import Throttle
from .http import (
    DEFAULT_MAX_REDIRECTS,
    NO_RETRIES,
    Backoff,
    make_session,
    mount_adapter,
    retry_after_seconds,
    transport_cause,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://r2z2.zkillboard.com"
MAX_REQUESTS_PER_SECOND = 20
"""zKillboard's published limit per IP."""
FIRST_BACKOFF = 0.5
"""Seconds before the first retry after a failure; doubles up to `max_backoff`."""
RATE_LIMITED_WAIT = 10.0
"""Seconds to wait after a 429 without a usable `Retry-After`."""
LONGEST_RETRY_AFTER = 600.0
"""Longest `Retry-After` obeyed as given."""
LIMITER_KEY = "r2z2"
UNUSABLE_ATTEMPTS = 5
"""Attempts a sequence answering an unusable killmail gets before it is skipped..."""
UNUSABLE_SECONDS = 60.0
"""...and the least time spent on it (both must be reached)."""
REPEAT_LOG_SECONDS = 60.0
"""An unchanged failure is logged again at most this often."""


def make_limiter(requests_per_second: int) -> Limiter:
    """A limiter admitting one request every 1/rate seconds, never two at once (burst 1)."""
    bucket = StateBucket([Rate(requests_per_second, Duration.SECOND, burst=1)])
    # No leak thread: a GCRA state bucket has nothing to leak. buffer_ms=1 absorbs the
    # millisecond rounding of the bucket clock.
    return Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=1)


@dataclass(frozen=True)
class Outcome:
    """One HTTP attempt: `kind` is ok, not_found, rate_limited or error."""

    kind: str
    data: Any = None
    wait: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Unusable:
    """A sequence skipped because it kept answering a mail that cannot be parsed."""

    sequence: int
    killmail_id: int | None
    reason: str


@dataclass(frozen=True)
class Delivery:
    """A killmail object from the feed. `sequence` may be past the one asked for when
    the feed no longer holds the ones in between (`skipped` of them; those skipped for
    an unusable mail are also in `unusable`)."""

    sequence: int
    envelope: Mapping[str, Any]
    skipped: int = 0
    unusable: tuple[Unusable, ...] = ()


@dataclass
class FeedCounters:
    requests: int = 0
    not_found: int = 0
    rate_limited: int = 0
    errors: int = 0
    skipped_sequences: int = 0


class R2Z2Client:
    """Polls the R2Z2 feed politely. Thread-safe for one caller at a time.

    Without `session`, one is made by `make_session` (our User-Agent with `contact`). A
    session handed in keeps its headers but gets this client's paced adapter mounted, so
    the limiter stays in front of every request either way."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        requests_per_second: int = 19,
        timeout: float = 10.0,
        not_found_wait: float = 6.0,
        max_backoff: float = 60.0,
        gap_confirmations: int = 3,
        unusable_attempts: int = UNUSABLE_ATTEMPTS,
        unusable_seconds: float = UNUSABLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        repeat_log_seconds: float = REPEAT_LOG_SECONDS,
        session: requests.Session | None = None,
        contact: str | None = None,
        sleep: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        if not 1 <= requests_per_second <= MAX_REQUESTS_PER_SECOND:
            raise ValueError(f"requests_per_second must be 1..{MAX_REQUESTS_PER_SECOND}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.not_found_wait = not_found_wait
        self.max_backoff = max_backoff
        self.gap_confirmations = gap_confirmations
        self.unusable_attempts = unusable_attempts
        self.unusable_seconds = unusable_seconds
        self._clock = clock
        self._failure_log = Throttle(repeat_log_seconds)
        self.backoff = Backoff(first=FIRST_BACKOFF, cap=max_backoff)
        self.counters = FeedCounters()
        self.limiter = make_limiter(requests_per_second)
        # Every request on the wire, redirect hops included, passes the limiter: the
        # adapter calls `_pace` before each send, and urllib3 retries nothing on its own.
        if session is None:
            session = make_session(
                contact,
                timeout=timeout,
                retries=NO_RETRIES,
                max_redirects=DEFAULT_MAX_REDIRECTS,
                pace=self._pace,
            )
        else:
            mount_adapter(session, timeout=timeout, retries=NO_RETRIES, pace=self._pace)
        self.session = session
        self.latest: int | None = None
        """The latest sequence the feed reported, when known."""
        self._wait = sleep or (lambda stop, seconds: stop.wait(seconds))

    # -- one attempt -------------------------------------------------------------------

    def _pace(self) -> None:
        """Called by the session's adapter before every request it sends."""
        self.limiter.try_acquire(LIMITER_KEY)
        self.counters.requests += 1

    def _get(self, path: str) -> Outcome:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            return Outcome("error", reason=transport_cause(exc, self.timeout))
        with response:
            if response.status_code == 404:
                return Outcome("not_found")
            if response.status_code == 429:
                wait = retry_after_seconds(
                    response.headers.get("Retry-After"),
                    default=RATE_LIMITED_WAIT,
                    cap=LONGEST_RETRY_AFTER,
                )
                return Outcome("rate_limited", wait=wait, reason="HTTP 429")
            if response.status_code != 200:
                return Outcome("error", reason=f"HTTP {response.status_code}")
            try:
                data = response.json()
            except ValueError:
                kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0]
                return Outcome("error", reason=f"HTTP 200 but the body is not JSON ({kind})")
        if not isinstance(data, dict):
            return Outcome("error", reason="HTTP 200 but the body is not a JSON object")
        return Outcome("ok", data=data)

    # -- sequence.json -----------------------------------------------------------------

    def latest_sequence(self, stop: threading.Event) -> int | None:
        """The feed's latest sequence; retries until it has one. None when stopped."""
        attempt = 0
        while not stop.is_set():
            outcome = self._get("/ephemeral/sequence.json")
            if outcome.kind == "ok":
                value = outcome.data.get("sequence")
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    self.latest = value
                    return value
                outcome = Outcome("error", reason=f"no usable 'sequence' in {outcome.data!r}"[:200])
            wait = self._wait_for(outcome, attempt, "sequence.json")
            attempt += 1
            if self._wait(stop, wait):
                return None
        return None

    def peek_latest(self) -> int | None:
        """One attempt at the latest sequence (for lag figures); None when it failed."""
        outcome = self._get("/ephemeral/sequence.json")
        value = outcome.data.get("sequence") if outcome.kind == "ok" else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            self.latest = value
            return value
        log.debug("R2Z2 sequence.json: %s", outcome.reason or outcome.kind)
        return None

    def _wait_for(self, outcome: Outcome, attempt: int, what: str) -> float:
        if outcome.kind == "rate_limited":
            self.counters.rate_limited += 1
            if self._failure_log.ready("429"):
                log.warning("R2Z2 %s: rate limited (429); waiting %.1f s", what, outcome.wait)
            return outcome.wait
        if outcome.kind == "not_found":
            self.counters.not_found += 1
            return self.not_found_wait
        self.counters.errors += 1
        wait = self.backoff.delay(attempt)
        if self._failure_log.ready(outcome.reason):
            others = self._failure_log.take_suppressed()
            log.warning(
                "R2Z2 %s at %s: %s; retrying in %.1f s%s",
                what,
                self.base_url,
                outcome.reason,
                wait,
                f" ({others} failures not logged since the last line)" if others else "",
            )
        return wait

    # -- one sequence ------------------------------------------------------------------

    def next_mail(self, sequence: int, stop: threading.Event) -> Delivery | None:
        """The object at `sequence`, waiting for it to be published; None when stopped.

        When `sequence` stays missing while the feed has moved past it (expired after a
        long stop, or never published), the first later sequence the feed still holds is
        returned instead and the gap is logged.
        """
        attempt = 0
        unusable = 0
        first_unusable = 0.0
        missing = 0
        while not stop.is_set():
            outcome = self._get(f"/ephemeral/{sequence}.json")
            if outcome.kind == "ok":
                reason = _unusable(outcome.data)
                if reason is None:
                    if attempt:
                        self._failure_log.reset()
                    return Delivery(sequence, outcome.data)
                if not unusable:
                    first_unusable = self._clock()
                unusable += 1
                waited = self._clock() - first_unusable
                if unusable >= self.unusable_attempts and waited >= self.unusable_seconds:
                    return self._skip_unusable(sequence, outcome.data, reason, unusable, stop)
                outcome = Outcome("error", reason=f"unusable killmail ({reason})")
            if outcome.kind == "not_found":
                missing += 1
                if missing >= self.gap_confirmations:
                    found = self._past_gap(sequence, stop)
                    if found is not None:
                        return found
            wait = self._wait_for(outcome, attempt, f"sequence {sequence}")
            if outcome.kind == "error":
                attempt += 1
            elif outcome.kind == "not_found":
                log.debug("R2Z2 sequence %d not published yet; waiting %.1f s", sequence, wait)
            if self._wait(stop, wait):
                return None
        return None

    def _skip_unusable(
        self, sequence: int, data: Mapping[str, Any], reason: str, times: int, stop: threading.Event
    ) -> Delivery | None:
        killmail_id = data.get("killmail_id")
        if not isinstance(killmail_id, int) or isinstance(killmail_id, bool):
            killmail_id = None
        self.counters.skipped_sequences += 1
        log.error(
            "R2Z2 sequence %d: unusable killmail %s %d times over %.0f s (%s); skipped and "
            "recorded for a later fetch",
            sequence,
            killmail_id if killmail_id is not None else "(no id)",
            times,
            self.unusable_seconds,
            reason,
        )
        skipped = Unusable(sequence, killmail_id, reason)
        delivery = self.next_mail(sequence + 1, stop)
        if delivery is None:
            return None
        return Delivery(
            delivery.sequence,
            delivery.envelope,
            delivery.skipped + 1,
            (skipped, *delivery.unusable),
        )

    def _past_gap(self, sequence: int, stop: threading.Event) -> Delivery | None:
        """When the feed is past `sequence`, the first later object it still holds."""
        latest = self.latest_sequence(stop)
        if latest is None or latest <= sequence:
            return None
        # Objects expire oldest first: find the first available one in (sequence, latest]
        # by bisection, checking the very next sequence first (a single hole).
        low, high = sequence + 1, latest
        first: Delivery | None = None
        probe = low
        while low <= high and not stop.is_set():
            outcome = self._get(f"/ephemeral/{probe}.json")
            if outcome.kind == "ok":
                first = Delivery(probe, outcome.data)
                high = probe - 1
            elif outcome.kind == "not_found":
                low = probe + 1
            else:
                return None  # errors: let the caller retry the whole thing later
            probe = (low + high) // 2
        if first is None:
            return None
        skipped = first.sequence - sequence
        self.counters.skipped_sequences += skipped
        log.warning(
            "R2Z2 sequences %d..%d are not on the feed (expired or never published) while it "
            "is at %d; %d skipped, resuming at %d",
            sequence,
            first.sequence - 1,
            latest,
            skipped,
            first.sequence,
        )
        return Delivery(first.sequence, first.envelope, skipped)


def _unusable(data: Mapping[str, Any]) -> str | None:
    """Why a JSON object from the feed is not a usable killmail; None when it is."""
    try:
        parse(data)
    except (MalformedKillmail, ValueError, TypeError) as exc:
        return str(exc)
    return None
