"""The standalone host behind `wn-persist run`: a pluggy host fed by zKillboard's R2Z2 feed
and by the Wanderer map API (or a static list of character ids).

It loads plugins through the `wanderer_notifier` entry points and calls them only through
the hooks in `hookspecs` (`pm.hook.*`): on_startup, on_tracked_characters_updated,
on_kill_processed, on_shutdown, and flush_pending (to save the feed position only after
queued mails are written) and pipeline_stats (progress line, backpressure, mails given up).

Delivery guarantee ("handled"): the last sequence saved is one whose mail, and every mail
before it, the plugins have confirmed written: by `flush_pending` answering True at a
checkpoint, or by `on_shutdown()` returning at a clean stop. A crash between checkpoints
re-reads the mails since the last checkpoint on restart (at most `HOST_CHECKPOINT_SECONDS`
worth); writes are idempotent, so that gives no duplicate rows. A plugin that does not
implement `flush_pending` gets the position saved after `on_kill_processed` returned, so a
crash can lose the mails it still had queued.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
from peewee import Database, InterfaceError, OperationalError

from .. import hookspecs
from ..db import migrator
from ..db.connect import is_postgres, open_database
from ..errors import ConfigError, MalformedKillmail, MapUnavailable
from ..ingest.counters import PipelineStats
from ..ingest.match import involves
from ..killmails.parse import parse_time, unwrap
from ..redact import first_line
from ..settings import HostSettings, Settings
from ..sources.r2z2 import Delivery, R2Z2Client
from ..sources.wanderer_map import MapClient, TrackedList
from ..throttle import Throttle
from . import feed_state

log = logging.getLogger(__name__)


# -- plugins ---------------------------------------------------------------------------


def make_plugin_manager(
    plugins: Sequence[object] = (), *, entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with the wanderer_notifier hookspecs, the installed plugins (entry
    points) and any `plugins` given."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def _age(seconds: float) -> str:
    """A short age: 42s, 17m, 5h, 12d."""
    seconds = max(0, int(seconds))
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172_800, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86_400}d"


def _static_entries(ids: Iterable[int]) -> list[dict[str, Any]]:
    return [{"character_id": i} for i in ids]


@dataclass
class HostCounters:
    seen: int = 0
    """Mails handed to the plugins."""
    matched: int = 0
    """Of those, mails with a tracked character on them (by the host's own list)."""
    hook_errors: int = 0
    malformed: int = 0
    skipped_sequences: int = 0
    """Sequences skipped: expired from the feed, or answering an unusable mail."""
    unusable_sequences: int = 0
    """Of those, sequences skipped for an unusable mail (recorded in `skipped_sequences`)."""
    checkpoints: int = 0
    unwritten: int = 0
    """Mails the plugins gave up during this run (dropped or lost); non-zero exit."""


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    last_sequence: int | None
    counters: HostCounters


class Host:
    """One run of the standalone host. `run()` blocks until `stop()` (or a signal)."""

    def __init__(
        self,
        settings: Settings,
        *,
        track: Iterable[int] = (),
        plugin_manager: pluggy.PluginManager | None = None,
        feed: R2Z2Client | None = None,
        map_client: MapClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`track`: character ids tracked besides `TRACKED_CHARACTER_IDS` and the map's
        list. Raises `ConfigError` when nothing says whom to track."""
        static = list(settings.host.static_ids)
        static.extend(i for i in dict.fromkeys(track) if i not in static)
        if not settings.map.configured and not static:
            raise ConfigError(
                "TRACKED_CHARACTER_IDS",
                "no tracked characters: set MAP_URL, MAP_NAME and MAP_API_KEY, "
                "or TRACKED_CHARACTER_IDS",
            )
        self.settings = settings
        self.options: HostSettings = dataclasses.replace(settings.host, static_ids=tuple(static))
        """`settings.host` with the `track` ids added."""
        self.pm = plugin_manager or make_plugin_manager()
        self.feed = feed or R2Z2Client(
            settings.feed.base_url,
            requests_per_second=settings.feed.requests_per_second,
            timeout=settings.feed.timeout,
            not_found_wait=settings.feed.not_found_wait,
            max_backoff=settings.feed.max_backoff,
            contact=settings.user_agent_contact,
        )
        self.map_client = map_client
        if self.map_client is None and settings.map.configured:
            self.map_client = MapClient(
                settings.map.url or "",
                settings.map.name or "",
                settings.map.api_key or "",
                timeout=settings.map.timeout,
                contact=settings.user_agent_contact,
            )
        self.counters = HostCounters()
        self.stop_event = threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._map_list: TrackedList | None = None
        self._pending: list[Mapping[str, Any]] | None = None
        self._tracked_ids: frozenset[int] = frozenset(self.options.static_ids)
        self._handed_over: int | None = None
        """Last sequence handed to the plugins."""
        self._saved: int | None = None
        """Last sequence stored in the database."""
        self._last_kill_time: dt.datetime | None = None
        self._started = False
        self._db: Database | None = None
        self._given_up_at_start = 0
        self._warned_given_up = False
        self._unrecorded: list[feed_state.Skipped] = []
        """Skipped sequences not yet stored in `skipped_sequences`."""
        self._map_log = Throttle(60.0)

    # -- control -----------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        if not self.stop_event.is_set():
            log.info("%s: stopping (finishing the current request, then flushing)", reason)
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM stop the host cleanly (main thread only)."""

        def handler(signum: int, _frame: Any) -> None:
            self.stop(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # -- tracked characters ------------------------------------------------------------

    def _tracked_entries(self) -> list[Mapping[str, Any]]:
        entries: list[Mapping[str, Any]] = list(self._map_list.entries) if self._map_list else []
        known = self._map_list.ids if self._map_list else frozenset()
        entries.extend(_static_entries(i for i in self.options.static_ids if i not in known))
        return entries

    def refresh_map(self) -> bool:
        """Fetch the map's list; queue a tracked-characters update when it changed.
        An outage keeps the last known list. Returns whether the list changed."""
        assert self.map_client is not None
        try:
            fresh = self.map_client.fetch()
        except MapUnavailable as exc:
            if self._map_log.ready(str(exc)):
                log.warning(
                    "map API %s: %s; keeping the last known list (%s)",
                    self.map_client.url,
                    first_line(exc),
                    f"{len(self._map_list.ids)} characters" if self._map_list else "none yet",
                )
            return False
        with self._lock:
            if self._map_list is not None and fresh.entries == self._map_list.entries:
                return False
            self._map_list = fresh
            self._pending = self._tracked_entries()
            self._tracked_ids = fresh.ids | frozenset(self.options.static_ids)
        log.info("map %s: %d tracked characters", self.settings.map.name, len(fresh.ids))
        return True

    def _apply_tracked(self) -> None:
        """Hand a changed list to the plugins (on the host's main thread)."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.pm.hook.on_tracked_characters_updated(characters=pending)

    # -- background: map refresh and progress ------------------------------------------

    def _ticker(self) -> None:
        now = self._clock()
        next_map = now + self.settings.map.refresh_seconds if self.map_client else None
        next_progress = now + self.options.progress_seconds
        while True:
            due = min(t for t in (next_map, next_progress) if t is not None)
            if self.stop_event.wait(max(0.0, due - self._clock())):
                return
            now = self._clock()
            if next_map is not None and now >= next_map:
                self.refresh_map()
                next_map = self._clock() + self.settings.map.refresh_seconds
            if now >= next_progress:
                log.info("%s", self.progress_line())
                next_progress = self._clock() + self.options.progress_seconds

    def plugin_stats(self) -> list[PipelineStats]:
        """The `pipeline_stats` of every plugin that keeps counters (none when one fails:
        counters are for information and backpressure, never a reason to stop)."""
        try:
            return list(self.pm.hook.pipeline_stats())
        except Exception as exc:  # noqa: BLE001 - a progress line never fails
            log.debug("pipeline_stats failed: %s", exc)
            return []

    def feed_position(self) -> dict[str, int | None]:
        """The last sequence handed to the plugins, the feed's latest, the lag between."""
        latest, current = self.feed.latest, self._handed_over
        lag = None if latest is None or current is None else max(0, latest - current)
        return {"last_sequence": current, "latest": latest, "lag": lag, "saved": self._saved}

    def progress_line(self) -> str:
        c = self.counters
        stats = self.plugin_stats()
        latest = self.feed.latest
        current = self._handed_over
        lag = "?" if latest is None or current is None else str(max(0, latest - current))
        age = "?"
        if self._last_kill_time is not None:
            seconds = (dt.datetime.now(dt.UTC) - self._last_kill_time).total_seconds()
            age = _age(seconds)
        stored = str(sum(s.rows_written for s in stats)) if stats else "?"
        queue = str(max(s.queued for s in stats)) if stats else "?"
        dropped = sum(s.dropped for s in stats)
        return (
            f"progress: seen={c.seen} matched={c.matched} stored={stored} "
            f"sequence={current if current is not None else '-'} "
            f"latest={latest if latest is not None else '?'} lag={lag} kill_age={age} "
            f"queue={queue} tracked={len(self._tracked_ids)} skipped={c.skipped_sequences}"
            + (f" dropped={dropped}" if dropped else "")
        )

    # -- checkpoints -------------------------------------------------------------------

    def _flush_plugins(self, timeout: float) -> bool:
        """`flush_pending` on every plugin; False if one answered False or failed, or
        when the host is asked to stop meanwhile (the wait is asked for in steps of at
        most a second, so a stop request is not held up by a database outage)."""
        deadline = self._clock() + timeout
        while True:
            step = max(0.0, min(1.0, deadline - self._clock()))
            try:
                answers = self.pm.hook.flush_pending(timeout=step)
            except Exception as exc:  # noqa: BLE001 - never crash on a plugin
                log.warning("flush_pending failed: %s", first_line(exc))
                return False
            if all(answers):
                return True
            if self.stop_event.is_set() or self._clock() >= deadline:
                return False

    def _reset_connection(self) -> None:
        """Drop a connection that failed, so the next save reconnects."""
        try:
            if self._db is not None:
                self._db.close()
        except Exception as exc:  # noqa: BLE001 - it is being thrown away
            log.debug("closing the host's database connection: %s", exc)

    def _save(self, sequence: int) -> None:
        assert self._db is not None
        feed_state.save_sequence(self._db, sequence)
        self._saved = sequence
        self.counters.checkpoints += 1

    def _given_up(self) -> int:
        """Mails the plugins `dropped` (queue full) or `lost` (given up at shutdown)."""
        return sum(s.given_up for s in self.plugin_stats())

    def _nothing_given_up(self) -> bool:
        """False once a plugin reports mails it dropped or lost during this run: the
        position then stays where it was, so the next start reads those mails again
        (writes are idempotent)."""
        given_up = self._given_up()
        if given_up > self._given_up_at_start:
            if not self._warned_given_up:
                self._warned_given_up = True
                log.error(
                    "a plugin gave up %d mails (queue full or database gone); the feed "
                    "position stays at %s so that the next start reads them again",
                    given_up - self._given_up_at_start,
                    self._saved,
                )
            return False
        return True

    def checkpoint(self) -> bool:
        """Save the last handed-over sequence once the plugins confirm it is written."""
        sequence = self._handed_over
        if sequence is None or sequence == self._saved:
            return True
        if not self._flush_plugins(self.options.flush_timeout):
            log.warning("plugins did not confirm their writes; sequence %d not saved", sequence)
            return False
        if not self._nothing_given_up() or not self._record_skipped():
            return False
        try:
            self._save(sequence)
        except Exception as exc:  # noqa: BLE001 - retried at the next checkpoint
            log.warning("could not save the feed position %d: %s", sequence, first_line(exc))
            self._reset_connection()
            return False
        return True

    def _note_skipped(self, delivery: Delivery) -> None:
        """Count skipped sequences; keep those skipped for an unusable mail to record."""
        self.counters.skipped_sequences += delivery.skipped
        if delivery.unusable:
            self.counters.unusable_sequences += len(delivery.unusable)
            self._unrecorded.extend(
                feed_state.Skipped(u.sequence, u.killmail_id, u.reason) for u in delivery.unusable
            )
            self._record_skipped()

    def _record_skipped(self) -> bool:
        """Store the skipped sequences not stored yet; False when the database refused
        (they are kept and tried again, and the position is not saved past them)."""
        if not self._unrecorded:
            return True
        assert self._db is not None
        try:
            feed_state.record_skipped(self._db, self._unrecorded)
        except Exception as exc:  # noqa: BLE001 - retried at the next checkpoint
            log.warning(
                "could not record %d skipped sequences: %s", len(self._unrecorded), first_line(exc)
            )
            self._reset_connection()
            return False
        self._unrecorded.clear()
        return True

    def _wait_for_queue(self) -> None:
        """Backpressure: the feed is pulled, so when a plugin's queue (`queued` in its
        `pipeline_stats`) reaches HOST_MAX_QUEUED, stop reading until it is written;
        nothing is ever dropped for want of room and the feed keeps the objects
        meanwhile."""
        queued = max((s.queued for s in self.plugin_stats()), default=0)
        if queued < self.options.max_queued:
            return
        log.info(
            "plugin queue at %d mails (HOST_MAX_QUEUED=%d): pausing the feed until it is written",
            queued,
            self.options.max_queued,
        )
        while not self.stop_event.is_set():
            if self._flush_plugins(min(self.options.flush_timeout, 5.0)):
                return
            if not self.stop_event.is_set():
                log.warning("plugin queue still not written; the feed stays paused")

    # -- mails -------------------------------------------------------------------------

    def _note_mail(self, envelope: Mapping[str, Any]) -> None:
        """Count the mail as matched when a tracked character (the host's own list) is on
        it, and note its kill time for the progress line."""
        try:
            kill_time = parse_time(unwrap(envelope).body.get("killmail_time"))
            matched = involves(envelope, self._tracked_ids)
        except (MalformedKillmail, ValueError, TypeError) as exc:
            self.counters.malformed += 1
            log.debug("mail %s: %s", envelope.get("killmail_id"), exc)
            return
        self._last_kill_time = kill_time
        if matched:
            self.counters.matched += 1

    def handle(self, sequence: int, envelope: Mapping[str, Any]) -> None:
        """Hand one mail to the plugins (never raises)."""
        self._apply_tracked()
        self._note_mail(envelope)
        try:
            self.pm.hook.on_kill_processed(killmail=envelope)
        except Exception as exc:  # noqa: BLE001 - a plugin bug must not stop the feed
            self.counters.hook_errors += 1
            log.error(
                "on_kill_processed failed for killmail %s (sequence %d): %s",
                envelope.get("killmail_id"),
                sequence,
                exc,
            )
        self.counters.seen += 1
        self._handed_over = sequence

    # -- the run -----------------------------------------------------------------------

    def plugin_config(self) -> dict[str, Any]:
        """What `on_startup` gets: persistence on, the same database as the host."""
        return {"ENABLE_PERSISTENCE": "true", "DATABASE_URL": self.settings.database_url}

    def _prepare_database(self) -> bool:
        """Migrate and read the stored position. A PostgreSQL server that is not reachable
        (yet: e.g. starting beside us in Docker) is retried with backoff until it answers
        or the host is stopped; SQLite errors are not transient and are raised."""
        assert self._db is not None
        attempt = 0
        while True:
            try:
                migrator.migrate(self._db)
                self._saved = feed_state.load_sequence(self._db)
                return True
            except (OperationalError, InterfaceError) as exc:
                if not is_postgres(self._db):
                    raise
                wait = min(30.0, 0.5 * 2 ** min(attempt, 10))
                attempt += 1
                log.warning(
                    "database %s unreachable: %s; retrying in %.1f s",
                    self.settings.masked_database_url,
                    first_line(exc),
                    wait,
                )
                self._reset_connection()
                if self.stop_event.wait(wait):
                    return False

    def _start(self) -> int | None:
        """Open the database, start the plugins, publish the tracked list, find the first
        sequence. None when stopped before that."""
        self._db = open_database(self.settings, bind=False)
        if not self._prepare_database():
            return None
        stored = self._saved
        self.pm.hook.on_startup(config=self.plugin_config())
        self._started = True
        self._given_up_at_start = self._given_up()
        if self.map_client is not None:
            self.refresh_map()
        if self._map_list is None:
            if self.options.static_ids:
                with self._lock:
                    self._pending = self._tracked_entries()
            else:
                log.warning(
                    "no tracked list yet (map API unreachable); the plugins keep their "
                    "stored list until the map answers"
                )
        self._apply_tracked()
        if stored is not None:
            latest = self.feed.peek_latest()
            behind = "" if latest is None else f"; the feed is at {latest}"
            log.info("resuming the R2Z2 feed after sequence %d (stored)%s", stored, behind)
            return stored + 1
        latest = self.feed.latest_sequence(self.stop_event)
        if latest is not None:
            log.info("first start: reading the R2Z2 feed from its current sequence %d", latest)
            # Nothing handled yet, so this position is trivially confirmed; a restart
            # before the first checkpoint then resumes here, not at a later "current".
            self._save(latest - 1)
        return latest

    def run(self) -> RunResult:
        """Run until stopped; then flush, save the position, shut the plugins down."""
        ticker: threading.Thread | None = None
        try:
            sequence = self._start()
            ticker = threading.Thread(target=self._ticker, name="wn-host-ticker", daemon=True)
            ticker.start()
            last_checkpoint = last_latest = self._clock()
            while sequence is not None and not self.stop_event.is_set():
                delivery = self.feed.next_mail(sequence, self.stop_event)
                if delivery is None:
                    break
                if delivery.skipped:
                    self._note_skipped(delivery)
                self.handle(delivery.sequence, delivery.envelope)
                sequence = delivery.sequence + 1
                self._wait_for_queue()
                if self._clock() - last_checkpoint >= self.options.checkpoint_seconds:
                    self.checkpoint()
                    last_checkpoint = self._clock()
                if self._clock() - last_latest >= self.options.progress_seconds:
                    self.feed.peek_latest()  # keeps the lag figure current while catching up
                    last_latest = self._clock()
        finally:
            self.stop_event.set()
            deadline = self._clock() + self.settings.writer.shutdown_timeout
            if ticker is not None:
                ticker.join(timeout=min(5.0, self.settings.writer.shutdown_timeout / 4))
            written = self._shutdown(deadline)
        log.info("%s", self.progress_line())
        if written:
            log.info("stopped at sequence %s", self._saved if self._saved is not None else "-")
            return RunResult(0, self._saved, self.counters)
        return RunResult(1, self._saved, self.counters)

    def _shutdown(self, deadline: float) -> bool:
        """Shut the plugins down (they write what they hold within the shutdown timeout)
        and save the position when they confirm. True when nothing handed over was left
        unwritten; otherwise logs how many and where the next start resumes."""
        if not self._started:
            if self._db is not None:
                self._db.close()
            return True
        # `on_shutdown` writes everything queued (the hook's contract) within the plugin's
        # PERSISTENCE_SHUTDOWN_TIMEOUT; a flush before it would add a wait of its own. The
        # flush after it confirms nothing is left (a stopped plugin answers at once).
        shutdown_ok = True
        try:
            self.pm.hook.on_shutdown()
        except Exception as exc:  # noqa: BLE001 - report, do not save past unwritten mails
            shutdown_ok = False
            log.error("on_shutdown failed: %s", first_line(exc))
        remaining = max(0.0, min(self.options.flush_timeout, deadline - self._clock()))
        flushed = shutdown_ok and self._flush_plugins(remaining)
        given_up = max(0, self._given_up() - self._given_up_at_start)
        self.counters.unwritten = given_up
        pending = self._handed_over is not None and self._handed_over != self._saved
        written = flushed and given_up == 0
        if pending and written and self._clock() < deadline and self._record_skipped():
            try:
                self._save(self._handed_over)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "could not save the feed position %s: %s", self._handed_over, first_line(exc)
                )
        if written and self._unrecorded:
            log.error("skipped sequences not recorded: %s", [s.sequence for s in self._unrecorded])
        if pending and self._saved != self._handed_over:
            what = (
                f"{given_up} killmails not written"
                if given_up
                else "the plugins did not confirm every write"
                if not written
                else "the feed position could not be saved"
            )
            log.error(
                "%s; the next start resumes the feed after sequence %s (stored) and reads "
                "them again (writes are idempotent)",
                what,
                self._saved if self._saved is not None else "-",
            )
        if self._db is not None:
            self._db.close()
        return written
