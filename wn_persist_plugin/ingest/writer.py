"""The background writer: a bounded queue of matched killmails, written in batches.

The host's thread only matches a mail (`match.involves`) and appends `(envelope, tracked
snapshot)` to the queue (see `plugin.PersistencePlugin.on_kill_processed`); this thread
parses the mails, gathers their involvement rows in a `rows.RowBatch` (names and regions
filled) and writes them with `store.write_rows`, one transaction per batch.

- Queue full: the queue is bounded in mails (`queue_size`) and in estimated bytes
  (`queue_bytes`, from `match.estimated_size`, counted until the mail's batch is
  written); a mail that would pass either bound is refused (drop-newest), counted in
  `dropped` and logged at most once a minute; the host is never blocked and nothing
  already queued is lost. A mail bigger than the byte bound on its own is accepted into
  an empty queue, so that no mail is refused forever.
- Database unreachable (or locked past its busy timeout, or no pooled connection free):
  the batch is kept and retried with exponential backoff (0.5 s doubling to 30 s); mails
  keep queueing meanwhile.
- `stop()` writes everything still queued before returning; only when the database stays
  unreachable past the shutdown timeout are the remaining mails given up (counted `lost`,
  logged with their ids).
- Control jobs (storing the tracked list, flush markers) travel in the same FIFO, so they
  run after everything handed over before them.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peewee import Database, InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from ..db.dialect import is_sqlite
from ..killmails import parse as km
from ..redact import first_line
from ..settings import WriterSettings
from ..throttle import Throttle
from .rows import InvolvementRow, RowBatch, RowFill
from .store import write_rows
from .tracked import TrackedSet

log = logging.getLogger(__name__)

MIB = 1024 * 1024

SQLITE_WRITE_WAIT = 5.0
"""Longest wait for SQLite's write lock per attempt (the busy timeout of the writer's
connection): a lock held longer counts as an outage, retried with backoff, so that the
writer reports it and a shutdown is not held up by SQLite's 30 s default."""


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Job:
    """Database work other than killmail rows, retried like a batch when the database is
    unreachable."""

    __slots__ = ("run", "description")

    def __init__(self, run: Callable[[Database], Any], description: str) -> None:
        self.run = run
        self.description = description


@dataclass
class WriterCounters:
    """Counted by the writer thread only (readers may see a value one batch old)."""

    rows_written: int = 0
    mails_written: int = 0
    write_errors: int = 0
    malformed: int = 0
    zkb_warnings: int = 0
    retries: int = 0
    lost: int = 0


class Writer:
    """Owns one thread and one bounded FIFO. `offer()` never blocks."""

    def __init__(
        self,
        db: Database,
        settings: WriterSettings | None = None,
        *,
        fill: RowFill | None = None,
        name: str = "wn-persist-writer",
    ) -> None:
        self.db = db
        self.settings = settings or WriterSettings()
        # Regions and names from the universe tables (`enrichment.fill.RowFiller`), filled
        # into each batch on this thread before it is written.
        self._batch = RowBatch(fill)
        self.counters = WriterCounters()
        self.dropped = 0
        self._queue: collections.deque[Any] = collections.deque()
        self._wakeup = threading.Event()
        self._interrupt = threading.Event()
        self._stopping = False
        self._deadline: float | None = None
        self._in_flight = 0
        # queued = offered - taken + in flight: each counter has one writer at a time
        # (offers hold _offer_lock; the writer thread takes), so no count is lost.
        self._offered = 0
        self._taken = 0
        # The same for estimated bytes; the writer thread releases a batch's bytes once
        # the batch is written (its mails are held until then).
        self._bytes_offered = 0
        self._bytes_released = 0
        self._max_mails = self.settings.queue_size
        self._max_bytes = self.settings.queue_bytes
        self._offer_lock = threading.Lock()
        self._gave_up = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._drop_log = Throttle(60.0)
        self._retry_log = Throttle(60.0)
        self._down_since: float | None = None
        """When the database became unreachable (monotonic); None while it answers."""
        self._written_at_down = 0
        self._drop_lock = threading.Lock()

    # -- host side ---------------------------------------------------------------------

    def start(self) -> Writer:
        self._thread.start()
        return self

    def offer(self, envelope: Any, tracked: TrackedSet, size: int = 0) -> bool:
        """Queue a matched mail of `size` estimated bytes; False (and counted in
        `dropped`) when the queue is full (in mails or bytes) or the writer is stopping."""
        queue = self._queue
        # The lock makes the check and the append one step against stop(): a mail is
        # either refused or queued before the thread is told to finish.
        with self._offer_lock:
            held = self._bytes_offered - self._bytes_released
            accepted = (
                len(queue) < self._max_mails
                and (held + size <= self._max_bytes or held <= 0)
                and not self._stopping
            )
            if accepted:
                queue.append((envelope, tracked, size))
                self._offered += 1
                self._bytes_offered += size
        if not accepted:
            self._drop(envelope)
            return False
        if not self._wakeup.is_set():
            self._wakeup.set()
        return True

    def submit(self, run: Callable[[Database], Any], description: str) -> None:
        """Queue database work (never refused); it runs after everything queued before."""
        self._queue.append(_Job(run, description))
        self._wakeup.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is written (or given up).
        True when done within `timeout` seconds."""
        if not self._thread.is_alive():
            return not self._queue
        marker = _Flush()
        self._queue.append(marker)
        self._wakeup.set()
        return marker.done.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Write everything queued, then end the thread. `timeout` (default: the
        shutdown timeout) bounds how long an unreachable database is retried.
        True when nothing was lost."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        why = "the writer is not running"
        if self._thread.is_alive():
            why = "handed over while the writer stopped"
            self._deadline = time.monotonic() + timeout
            with self._offer_lock:
                self._stopping = True
            self._interrupt.set()
            self._wakeup.set()
            self._thread.join()
        else:
            with self._offer_lock:
                self._stopping = True
        if self._queue:
            # Queued after the thread's last look (work submitted while it stopped), or
            # never started: counted and logged, never silently left behind.
            self._abandon(why)
        return self.counters.lost == 0

    @property
    def queued(self) -> int:
        """Mails waiting or being written (O(1); may be one batch old for a reader)."""
        return max(0, self._offered - self._taken) + self._in_flight

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes of the mails waiting or being written (O(1))."""
        return max(0, self._bytes_offered - self._bytes_released)

    @property
    def accepted(self) -> int:
        """Mails `offer()` accepted since the start (`accepted + dropped` = offered)."""
        return self._offered

    def _drop(self, envelope: Any) -> None:
        with self._drop_lock:
            self.dropped += 1
            if not self._drop_log.ready():
                return
            others = self._drop_log.take_suppressed()
        reason = "shutting down" if self._stopping else "queue full"
        log.warning(
            "wn-persist: %s (%d mails or %d MiB): dropped killmail %s%s; "
            "raise PERSISTENCE_QUEUE_SIZE / PERSISTENCE_QUEUE_BYTES or check the database",
            reason,
            self.settings.queue_size,
            self.settings.queue_bytes // MIB,
            km.killmail_id_of(envelope),
            f" and {others} more since the last warning" if others else "",
        )

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wakeup.clear()
                if self._gave_up:
                    self._abandon("the database stayed unreachable past the shutdown timeout")
                    break
                rows, mails, size, control = self._take()
                if rows or mails:
                    self._write(rows, mails)
                    self._in_flight = 0
                self._bytes_released += size
                if control is not None:
                    self._control(control)
                if rows or mails or control is not None:
                    continue
                if self._stopping:
                    break
                self._wakeup.wait(5.0)
        except Exception:  # pragma: no cover - a bug; keep the host alive and say so
            log.exception("wn-persist: the writer thread failed")
            self._abandon("the writer thread failed")
        finally:
            try:
                self.db.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail
                pass

    def _take(self) -> tuple[list[InvolvementRow], int, int, Any]:
        """Pop mails until the batch holds `batch_rows` rows, the queue is empty or a
        control item comes next; their rows, filled, with the number of mails, their
        estimated bytes and the control item that stopped the batch (if any)."""
        batch = self._batch
        mails = size = 0
        queue = self._queue
        limit = self.settings.batch_rows
        control = None
        while len(batch) < limit:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if type(item) is not tuple:
                control = item
                break
            mails += 1
            self._in_flight = mails
            self._taken += 1
            size += item[2]
            self._add(batch, item[0], item[1])
        return batch.take(), mails, size, control

    def _add(self, batch: RowBatch, envelope: Any, tracked: TrackedSet) -> None:
        try:
            mail = km.parse(envelope)
        except km.MalformedKillmail as exc:
            self.counters.malformed += 1
            log.warning("wn-persist: skipped malformed %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - never let one mail stop the writer
            self.counters.malformed += 1
            log.warning("wn-persist: skipped unreadable killmail: %s", first_line(exc))
            return
        if mail.zkb_warning:
            self.counters.zkb_warnings += 1
            log.warning("wn-persist: killmail %d: %s", mail.killmail_id, mail.zkb_warning)
        batch.add(mail, tracked)

    def _write(self, rows: list[InvolvementRow], mails: int) -> None:
        if not rows:
            return
        if self._with_retry(lambda db: self._write_once(db, rows, mails), f"{mails} mails"):
            return
        self.counters.lost += mails
        ids = sorted({row.killmail_id for row in rows})
        log.error("wn-persist: gave up on %d killmails: %s", len(ids), ids)

    def _write_once(self, db: Database, rows: list[InvolvementRow], mails: int) -> None:
        result = write_rows(db, rows)
        for row, reason in result.failed:
            log.warning(
                "wn-persist: killmail %s (character %s, %s) not stored: %s",
                row.killmail_id,
                row.related_character_id,
                row.character_role,
                reason,
            )
        self.counters.write_errors += len(result.failed)
        self.counters.rows_written += len(rows) - len(result.failed)
        self.counters.mails_written += mails

    def _control(self, item: Any) -> None:
        if isinstance(item, _Flush):
            item.done.set()
        elif isinstance(item, _Job):
            if not self._with_retry(item.run, item.description):
                log.error("wn-persist: gave up on %s", item.description)

    def _with_retry(self, work: Callable[[Database], Any], what: str) -> bool:
        """Run `work(db)`; retry connection failures with backoff. False when given up
        (shutdown deadline passed, or a non-connection error).

        The outage is logged when it begins (with its cause), at most once a minute while
        it lasts, and when the database answers again (with its length)."""
        delay = self.settings.retry_initial
        while True:
            try:
                self._bound_lock_wait()
                work(self.db)
                if self._down_since is not None:
                    self._database_back()
                return True
            except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
                # MaxConnectionsExceeded: every pooled connection stayed busy (e.g. a long
                # statistics run); wait for one like for a database that is down.
                self._reset_connection()
                self.counters.retries += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    self._written_at_down = self.counters.mails_written
                    self._retry_log.reset()
                if self._stopping and self._past_deadline():
                    self._gave_up = True
                    return False
                cause = first_line(exc)
                if self._retry_log.ready(cause):
                    log.warning(
                        "wn-persist: database unavailable (%s); retrying %s in %.1f s, "
                        "%d mails queued",
                        cause,
                        what,
                        delay,
                        self.queued,
                    )
            except Exception as exc:  # noqa: BLE001 - a bug or bad data: do not loop forever
                self._reset_connection()
                log.error("wn-persist: writing %s failed: %s", what, first_line(exc))
                log.debug("details", exc_info=True)
                return False
            self._sleep(delay)
            delay = min(delay * 2, self.settings.retry_max)

    def _bound_lock_wait(self) -> None:
        """SQLite: wait at most `SQLITE_WRITE_WAIT` seconds for the write lock, and never
        past the shutdown deadline while stopping."""
        if not is_sqlite(self.db):
            return
        wait = SQLITE_WRITE_WAIT
        if self._stopping and self._deadline is not None:
            wait = max(0.05, min(wait, self._deadline - time.monotonic()))
        self.db.connect(reuse_if_open=True)
        self.db.execute_sql(f"PRAGMA busy_timeout = {int(wait * 1000)}")

    def _database_back(self) -> None:
        assert self._down_since is not None
        down = time.monotonic() - self._down_since
        self._down_since = None
        self._retry_log.reset()
        log.warning(
            "wn-persist: database back after %.1f s unavailable; %d mails written since, "
            "%d still queued",
            down,
            self.counters.mails_written - self._written_at_down,
            self.queued,
        )

    def _sleep(self, delay: float) -> None:
        if self._stopping:
            remaining = (self._deadline or 0) - time.monotonic()
            time.sleep(max(0.0, min(delay, remaining)))
        else:
            self._interrupt.wait(delay)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _reset_connection(self) -> None:
        """Drop a broken connection so that the next attempt opens a new one."""
        db = self.db
        try:
            db.close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            state = getattr(db, "_state", None)
            if state is not None:
                state.reset()

    def abandon(self, why: str) -> None:
        """Give up everything still queued: counted `lost`, logged with the mails' ids."""
        with self._offer_lock:
            self._stopping = True
        self._abandon(why)

    def _abandon(self, why: str) -> None:
        ids = []
        while self._queue:
            item = self._queue.popleft()
            if type(item) is tuple:
                self._taken += 1
                self._bytes_released += item[2]
                ids.append(km.killmail_id_of(item[0]))
            elif isinstance(item, _Flush):
                item.done.set()
            elif isinstance(item, _Job):
                log.error("wn-persist: gave up on %s (%s)", item.description, why)
        if ids:
            self.counters.lost += len(ids)
            log.error("wn-persist: %d killmails not written (%s): %s", len(ids), why, ids)
