"""Counters of the ingest pipeline: what the `pipeline_stats` hook returns, and the
tally the hook path counts with."""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """A plugin's counters since startup (the `pipeline_stats` hook's answer).

    `seen` = `matched` + `ignored` + `malformed` on arrival + `errors`; of the matched
    mails, `dropped` were refused because the queue was full. Every field defaults to 0,
    so a plugin that keeps fewer counters fills only those."""

    seen: int = 0
    """Mails handed to `on_kill_processed` while active."""
    matched: int = 0
    """Mails with at least one tracked character (queued or dropped)."""
    ignored: int = 0
    """Mails without a tracked character."""
    malformed: int = 0
    """Malformed mails skipped (on arrival or when parsed by the writer)."""
    dropped: int = 0
    """Matched mails refused because the queue was full (or arriving during shutdown)."""
    queued: int = 0
    """Matched mails waiting to be written right now."""
    queued_bytes: int = 0
    """Estimated memory of those mails, in bytes (`ingest.match.estimated_size`)."""
    mails_written: int = 0
    """Matched mails whose rows were written (a redelivered mail counts again)."""
    rows_written: int = 0
    """Involvement rows written (inserted, updated or already present)."""
    write_errors: int = 0
    """Rows the database refused (each logged with its killmail id)."""
    retries: int = 0
    """Attempts that failed because the database was unreachable."""
    lost: int = 0
    """Queued mails given up at shutdown because the database stayed unreachable."""
    zkb_warnings: int = 0
    """Mails stored without a value because their zkb block was unusable."""
    errors: int = 0
    """Unexpected errors inside the hooks (logged; never raised into the host)."""
    tracked: int = 0
    """Characters currently tracked."""

    @property
    def given_up(self) -> int:
        """Mails handed over that will not be written: `dropped` + `lost`."""
        return self.dropped + self.lost

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Tally:
    """A count that any number of threads add to, cheaply and without losing one.

    Adding is `next(tally.counter)`: one call into C on an `itertools.count`, which the
    GIL keeps whole (~20 ns; a `threading.Lock` around an int costs ~130 ns, and a shared
    int's `+= 1` is a read-modify-write that Python does not promise to keep whole across
    threads). `total()` reads the count by taking the next number itself: every number
    handed out so far went to an add or to an earlier read, and reads are counted (under
    a lock, off the adding path), so the difference is exact.
    """

    __slots__ = ("counter", "_lock", "_reads")

    def __init__(self) -> None:
        self.counter = itertools.count()
        self._lock = threading.Lock()
        self._reads = 0

    def total(self) -> int:
        """How often `next(counter)` was called, reads excluded."""
        with self._lock:
            taken = next(self.counter)  # = adds so far + earlier reads
            reads = self._reads
            self._reads = reads + 1
        return taken - reads
