"""ESI's rate-limit groups: one pacer, shared by every thread of a client, that keeps
requests inside each group's token bucket using the headers ESI sends.

ESI puts routes into rate-limit groups, each a floating-window token bucket (killmails:
3,600 tokens per 15 minutes; a 2xx costs 2 tokens, a 4xx 5). Every answer of such a route
carries `X-Ratelimit-Group`, `X-Ratelimit-Limit` (`3600/15m`), `X-Ratelimit-Remaining`
and `X-Ratelimit-Used`; tokens spent come back one window after they were spent. An
empty bucket answers 429 with `Retry-After`.

The pacer learns each route's group from the answers, and before a request of a known
group it reserves the worst-case cost (`RESERVE`): it goes out only when the last
reported balance, plus what our own spending since then has given back, minus what
requests in flight may still spend, covers it. Otherwise it waits for the next token to
come back (a few tokens, `SPARE`, are never counted on). A 429 holds the whole group
until its `Retry-After` has passed. Waits are reported to `on_wait(seconds, reason)` (the
backfill's progress bar) and end early when `stop()` is called.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import SourceUnavailable

RESERVE = 5
"""Tokens held for a request in flight: the cost of a 4xx, the dearest answer."""
SPARE = 10
"""Tokens never counted on: answers to concurrent requests may arrive out of order, so the
balance last read can be a few requests old."""
DEFAULT_WINDOW = 900.0
"""Seconds of a window when `X-Ratelimit-Limit` does not say (ESI's are 15 minutes)."""
MIN_WAIT = 0.01
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smh])\s*$")


class Stopped(SourceUnavailable):
    """The pacer was stopped (Ctrl-C) while a request waited for tokens."""


def parse_limit(value: str | None) -> tuple[int, float] | None:
    """`3600/15m` -> (3600, 900.0); None when absent or unreadable."""
    match = _LIMIT.match(value or "")
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) * _UNITS[match.group(3)]


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(str(headers.get(name, "")).strip())
    except ValueError:
        return None


@dataclass
class _Bucket:
    limit: int
    window: float
    remaining: int
    reported_at: float
    inflight: int = 0
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    """(when the tokens come back, how many) for our own requests, oldest first."""
    hold_until: float = 0.0
    probe_at: float | None = None
    """When a request may go out although our own spending promises no tokens back (the
    bucket was emptied by someone else, or a 429 said when to come back): its answer
    brings the true balance."""

    def available(self, now: float) -> int:
        while self.spent and self.spent[0][0] <= self.reported_at:
            self.spent.popleft()  # already back when the balance was reported
        back = sum(cost for at, cost in self.spent if at <= now)
        return self.remaining + back - self.inflight

    def next_return(self, now: float) -> float | None:
        """Seconds until our next spent tokens come back; None when none are pending."""
        for at, _ in self.spent:
            if at > now:
                return at - now
        return None

    def refill_time(self) -> float:
        """Seconds in which the bucket refills what one request may need."""
        return self.window * (RESERVE + SPARE) / max(self.limit, 1)


@dataclass(frozen=True)
class Ticket:
    """A reservation for one request: its group (None when the route's group is not known
    yet) and the tokens held for it."""

    group: str | None
    held: int = 0


class RateLimitPacer:
    """Thread-safe pacing of ESI's rate-limit groups (one per client, shared by workers)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._buckets: dict[str, _Bucket] = {}
        self._routes: dict[str, str] = {}
        self._stopped = False
        self.on_wait = on_wait
        self.waited = 0.0
        """Seconds spent waiting for tokens, in total."""
        self.rate_limited = 0
        """429s seen from a rate-limit group."""

    def stop(self) -> None:
        """Wake every waiting request; they raise `Stopped`."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def acquire(self, route: str) -> Ticket:
        """Wait until the route's group can take one more request; hold tokens for it."""
        with self._cond:
            while True:
                if self._stopped:
                    raise Stopped("ESI: stopped while waiting for the rate limit")
                group = self._routes.get(route)
                bucket = self._buckets.get(group) if group else None
                if bucket is None:
                    return Ticket(None)
                now = self._clock()
                if bucket.hold_until > now:
                    wait, why = bucket.hold_until - now, f"{group}: 429, Retry-After"
                elif bucket.available(now) >= RESERVE + SPARE or (
                    bucket.probe_at is not None and now >= bucket.probe_at and not bucket.inflight
                ):
                    bucket.probe_at = None
                    bucket.inflight += RESERVE
                    return Ticket(group, RESERVE)
                else:
                    pending = bucket.next_return(now)
                    if pending is None:
                        if bucket.probe_at is None:
                            bucket.probe_at = now + bucket.refill_time()
                        pending = max(bucket.probe_at - now, MIN_WAIT)
                    wait = pending
                    why = f"{group}: {bucket.available(now)} of {bucket.limit} tokens left"
                wait = max(wait, MIN_WAIT)
                self.waited += wait
                if self.on_wait is not None:
                    self.on_wait(wait, why)
                self._cond.wait(wait)

    def release(
        self, route: str, ticket: Ticket, status: int | None, headers: Mapping[str, str]
    ) -> None:
        """Account for the answer (`status` None: no answer) and free the held tokens."""
        group = str(headers.get("X-Ratelimit-Group", "")).strip() or None
        with self._cond:
            if ticket.group is not None and ticket.group in self._buckets:
                self._buckets[ticket.group].inflight -= ticket.held
            if group is not None:
                self._routes[route] = group
                self._note(group, status, headers)
            self._cond.notify_all()

    def _note(self, group: str, status: int | None, headers: Mapping[str, str]) -> None:
        now = self._clock()
        limit = parse_limit(headers.get("X-Ratelimit-Limit"))
        remaining = _int_header(headers, "X-Ratelimit-Remaining")
        used = _int_header(headers, "X-Ratelimit-Used")
        bucket = self._buckets.get(group)
        if bucket is None:
            tokens, window = limit or (RESERVE, DEFAULT_WINDOW)
            bucket = _Bucket(tokens, window, tokens if remaining is None else remaining, now)
            self._buckets[group] = bucket
        elif limit is not None:
            bucket.limit, bucket.window = limit
        if remaining is not None:
            bucket.remaining, bucket.reported_at = remaining, now
        if used:
            bucket.spent.append((now + bucket.window, used))
        if status == 429:
            self.rate_limited += 1
            # Until Retry-After is known (`hold`), nothing of this group goes out.
            bucket.remaining, bucket.reported_at = 0, now

    def hold(self, route: str, seconds: float) -> bool:
        """After a 429 of the route's group: no request of it before `seconds` from now.
        False when the route's group is unknown (not a rate-limit group's 429)."""
        with self._cond:
            group = self._routes.get(route)
            if group is None:
                return False
            bucket = self._buckets[group]
            bucket.hold_until = max(bucket.hold_until, self._clock() + seconds)
            bucket.probe_at = bucket.hold_until
            self._cond.notify_all()
            return True
