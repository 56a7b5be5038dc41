"""The pluggy plugin object registered under the `wanderer_notifier` entry point.

A host calls the hooks of `hookspecs`; this module implements them:

- `on_startup(config)`: settings (config over environment over `.env`); inert with one log
  line unless `ENABLE_PERSISTENCE` is true; otherwise opens the database, runs pending
  migrations, loads the tracked characters and starts the writer thread. A bad setting
  raises `ConfigError` (one line naming the variable). An unreachable database does not
  stop the host: startup work is retried in the background and mails queue meanwhile.
- `on_tracked_characters_updated(characters)`: swaps the in-memory id set at once and
  queues the table update for the writer.
- `on_kill_processed(killmail)`: unwraps the envelope, walks the participant ids through
  the tracked set and queues a match; parsing and writing happen on the writer thread.
  Never raises, never waits on the database.
- `on_shutdown()`: writes everything queued, stops the threads, closes the database, all
  within `PERSISTENCE_SHUTDOWN_TIMEOUT`. A host that never calls it gets the same at
  interpreter exit (`atexit`); mails that cannot be written are logged with their ids.
- `flush_pending(timeout)`: waits until every mail handed over before it is written.
- `pipeline_stats()`: the counters (`ingest.counters.PipelineStats`).

Instances are independent (own settings, queue, thread, counters and tracked set); the
models are bound to the one `database_proxy`, so instances active at the same time in
one process must use the same database.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from peewee import Database, InterfaceError, OperationalError

from .db import migrator
from .db.connect import open_database
from .enrichment import fill as enrichment
from .enrichment import pricing
from .errors import MalformedKillmail
from .hookspecs import hookimpl
from .ingest.counters import PipelineStats, Tally
from .ingest.match import involved_size
from .ingest.tracked import TrackedSet, load_tracked, normalize, store_tracked
from .ingest.writer import Writer
from .killmails.parse import killmail_id_of
from .redact import first_line
from .settings import Settings, load_settings
from .statistics.scheduler import Scheduler

log = logging.getLogger("wn_persist_plugin")


class PersistencePlugin:
    """Keeps the killmails that involve tracked characters (hooks: see hookspecs).

    `environ` and `dotenv` replace the process environment and `./.env` (for tests and
    embedding); `config` passed to `on_startup` still wins over both.
    """

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, dotenv: Path | None = None
    ) -> None:
        self._environ = environ
        self._dotenv = dotenv
        self.settings: Settings | None = None
        self.db: Database | None = None
        self._writer: Writer | None = None
        self._tracked = TrackedSet()
        self._tracked_from_host = False
        self._scheduler: Any = None
        self._last_writer: Writer | None = None
        self._lock = threading.Lock()
        # Counted on the host's thread(s) on every call (see Tally); matched mails are
        # counted by the writer (accepted + dropped).
        self._seen = Tally()
        self._malformed = 0
        self._errors = 0

    # -- hooks ---------------------------------------------------------------------------

    @hookimpl
    def on_startup(self, config: Mapping[str, Any] | None) -> None:
        """Load settings; when enabled open and migrate the database and start writing.

        Raises `config.ConfigError` for a bad setting, and a migration's own error when a
        migration fails; an unreachable database is retried in the background instead.
        (`config` has no default on purpose: pluggy does not pass arguments that have one.)
        """
        if self._writer is not None:
            log.warning("wn-persist: on_startup called twice; ignored")
            return
        settings = load_settings(overrides=config or {}, environ=self._environ, dotenv=self._dotenv)
        self.settings = settings
        if not settings.enable_persistence:
            log.info("wn-persist: persistence disabled (ENABLE_PERSISTENCE is false)")
            return
        statistics_steps: list[Callable[[Database], object]] = [enrichment.scheduler_step(settings)]
        price_step = pricing.scheduler_step(settings)  # None when ESI enrichment is off
        if price_step is not None:
            statistics_steps.append(price_step)
        db = open_database(settings)
        self.db = db
        self._seen = Tally()  # counters are since this startup
        with self._lock:
            self._malformed = self._errors = 0
        # Regions and names known from the universe tables go into rows as they are
        # written; the rest is filled by the scheduled enrichment step (never on this path).
        writer = Writer(db, settings.writer, fill=enrichment.RowFiller(db))
        try:
            self._prepare(db)
        except (OperationalError, InterfaceError) as exc:
            log.error(
                "wn-persist: database %s unreachable at startup (%s); retrying in the "
                "background, killmails are queued meanwhile",
                settings.masked_database_url,
                first_line(exc),
            )
            writer.submit(self._prepare, "startup (migrations, tracked characters)")
        finally:
            _close_quietly(db)
        self._writer = writer.start()
        atexit.register(self._at_exit, writer)
        self._scheduler = Scheduler(settings, db, before_aggregation=statistics_steps)
        self._scheduler.start()
        if self._tracked_from_host:
            known = f"{len(self._tracked)} tracked characters"
        elif len(self._tracked):
            known = f"{len(self._tracked)} tracked characters (stored; the host's list replaces it)"
        else:
            known = "no tracked characters yet (waiting for the host's list)"
        log.info("wn-persist: storing killmails in %s; %s", settings.masked_database_url, known)

    @hookimpl
    def on_tracked_characters_updated(self, characters: Iterable[Mapping[str, Any]]) -> None:
        """Replace the tracked set now; the table is updated by the writer thread."""
        writer = self._writer
        if writer is None:
            log.debug("wn-persist: inactive; tracked characters ignored")
            return
        try:
            result = normalize(characters)
            if result.invalid:
                log.warning(
                    "wn-persist: ignored %d tracked-character entries without a usable id "
                    "(first: %s)",
                    len(result.invalid),
                    result.invalid[0],
                )
            if not result.entries and result.invalid:
                log.warning(
                    "wn-persist: no usable entry in the tracked list; keeping the previous "
                    "%d characters",
                    len(self._tracked),
                )
                return
            entries = result.entries
            self._tracked = TrackedSet.of(entries)
            self._tracked_from_host = True
            writer.submit(
                lambda db: store_tracked(db, entries), f"storing {len(entries)} tracked characters"
            )
            log.info("wn-persist: tracking %d characters", len(entries))
        except Exception:
            with self._lock:
                self._errors += 1
            log.exception("wn-persist: tracked characters update failed")

    @hookimpl
    def on_kill_processed(self, killmail: Mapping[str, Any]) -> None:
        """Queue the mail when a tracked character is on it; return at once."""
        writer = self._writer
        if writer is None:
            return
        next(self._seen.counter)
        try:
            tracked = self._tracked
            size = involved_size(killmail, tracked.ids)
            if size:
                writer.offer(killmail, tracked, size)
        except MalformedKillmail as exc:
            with self._lock:
                self._malformed += 1
            log.warning("wn-persist: skipped malformed %s", exc)
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            with self._lock:
                self._errors += 1
            log.error("wn-persist: killmail %s not handled: %s", _id_of(killmail), first_line(exc))

    @hookimpl
    def on_shutdown(self) -> None:
        """Write everything queued, stop the threads and close the database, within
        `PERSISTENCE_SHUTDOWN_TIMEOUT` seconds in all (mails still unwritten then are
        counted `lost` and logged with their ids)."""
        writer = self._writer
        if writer is None:
            return
        timeout = writer.settings.shutdown_timeout
        deadline = time.monotonic() + timeout
        # The statistics job stops first, so the writer's final flush is not competing
        # with it; it gets a part of the budget, the writer the rest.
        if self._scheduler is not None:
            self._scheduler.stop(timeout=min(10.0, timeout / 4))
            self._scheduler = None
        writer.stop(max(0.0, deadline - time.monotonic()))
        atexit.unregister(self._at_exit)
        self._last_writer = writer
        self._writer = None
        if self.db is not None:
            _close_quietly(self.db)
        stats = self.pipeline_stats()
        log.info(
            "wn-persist: stopped; %d mails seen, %d matched, %d rows written, %d dropped, "
            "%d lost, %d malformed, %d write errors",
            stats.seen,
            stats.matched,
            stats.rows_written,
            stats.dropped,
            stats.lost,
            stats.malformed,
            stats.write_errors,
        )

    def _at_exit(self, writer: Writer) -> None:
        """At interpreter exit: what `on_shutdown` would do, when the host never called it
        (the writer's thread is a daemon and would die with its queue)."""
        if self._writer is not writer:
            return
        log.warning("wn-persist: the host did not call on_shutdown; writing the queue at exit")
        try:
            self.on_shutdown()
        except Exception as exc:  # noqa: BLE001 - the interpreter is going away
            log.error("wn-persist: shutdown at exit failed: %s", first_line(exc))
            writer.abandon("the shutdown at exit failed")

    # -- for hosts and tests -----------------------------------------------------------

    @property
    def active(self) -> bool:
        """True between a successful enabled startup and shutdown."""
        return self._writer is not None

    @property
    def tracked(self) -> TrackedSet:
        """The tracked characters used for matching right now."""
        return self._tracked

    @hookimpl
    def flush_pending(self, timeout: float) -> bool:
        """Wait until every mail handed over before this call is written (or refused).
        True when done within `timeout` seconds; True at once when inactive."""
        writer = self._writer
        return True if writer is None else writer.flush(timeout)

    @hookimpl
    def pipeline_stats(self) -> PipelineStats:
        """The counters (cheap; safe to call from any thread)."""
        writer = self._writer or self._last_writer
        with self._lock:
            malformed, errors = self._malformed, self._errors
        matched = writer.accepted + writer.dropped if writer else 0
        # A read may see a mail matched (on another thread) before it is seen.
        seen = max(self._seen.total(), matched + malformed + errors)
        wc = writer.counters if writer else None
        return PipelineStats(
            seen=seen,
            matched=matched,
            ignored=seen - matched - malformed - errors,
            malformed=malformed + (wc.malformed if wc else 0),
            dropped=writer.dropped if writer else 0,
            queued=self._writer.queued if self._writer else 0,
            queued_bytes=self._writer.queued_bytes if self._writer else 0,
            mails_written=wc.mails_written if wc else 0,
            rows_written=wc.rows_written if wc else 0,
            write_errors=wc.write_errors if wc else 0,
            retries=wc.retries if wc else 0,
            lost=wc.lost if wc else 0,
            zkb_warnings=wc.zkb_warnings if wc else 0,
            errors=errors,
            tracked=len(self._tracked),
        )

    # -- internals ---------------------------------------------------------------------

    def _prepare(self, db: Database) -> None:
        """Migrations and the tracked set from the table (unless the host sent one)."""
        migrator.migrate(db)
        loaded = load_tracked(db)
        if not self._tracked_from_host:
            self._tracked = loaded


def _close_quietly(db: Database) -> None:
    try:
        db.close()
    except Exception:  # noqa: BLE001 - a broken connection may refuse to close cleanly
        pass


def _id_of(killmail: Any) -> Any:
    try:
        return killmail_id_of(killmail)
    except Exception:  # noqa: BLE001
        return None


plugin = PersistencePlugin()
"""The instance the `wanderer_notifier` entry point registers."""
