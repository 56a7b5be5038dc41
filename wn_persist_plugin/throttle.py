"""A log throttle: the same message at most once per interval, the rest counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class Throttle:
    """Lets a message through at most once per `interval` seconds and counts the rest.

    `ready(key)`: True when the message should be logged now, that is when `key` (what the
    message says, e.g. its cause) differs from the last one let through, or `interval` has
    passed since then. `take_suppressed()` returns (and resets) how many were held back,
    to say "and N more" in the next message. Thread-safe."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._key: Hashable = None
        self._lock = threading.Lock()
        self.suppressed = 0

    def ready(self, key: Hashable = None) -> bool:
        now = self._clock()
        with self._lock:
            if key != self._key or now >= self._next:
                self._key = key
                self._next = now + self.interval
                return True
            self.suppressed += 1
            return False

    def take_suppressed(self) -> int:
        with self._lock:
            count, self.suppressed = self.suppressed, 0
        return count

    def reset(self) -> None:
        """Let the next message through whatever it says (e.g. after a recovery)."""
        with self._lock:
            self._next = float("-inf")
            self._key = None
