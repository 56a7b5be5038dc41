"""The standalone host behind `wn-persist run`: a pluggy host fed by zKillboard's R2Z2 feed
and by the Wanderer map API (or a static list of character ids).

It loads plugins through the `wanderer_notifier` entry points and drives them only through
the hooks in `hookspecs` (on_startup, on_tracked_characters_updated, on_kill_processed,
on_shutdown). Two optional plugin methods are used when a plugin has them: `flush(timeout)`
(to save the feed position only after queued mails are written) and `stats()` (for the
progress line).

Delivery guarantee ("handled"): the last sequence saved is one whose mail, and every mail
before it, a plugin has confirmed written: by `flush()` returning at a checkpoint, or by
`on_shutdown()` returning at a clean stop. A crash between checkpoints re-reads the mails
since the last checkpoint on restart (at most `HOST_CHECKPOINT_SECONDS` worth); writes are
idempotent, so that gives no duplicate rows. A plugin without `flush()` gets the position
saved after `on_kill_processed` returned, so a crash can lose the mails it still had queued.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pluggy
from peewee import Database, InterfaceError, OperationalError

from .. import hookspecs
from ..db import migrator
from ..db.connect import is_postgres, open_database
from ..errors import ConfigError, MalformedKillmail, MapUnavailable
from ..killmails.parse import parse_time, participant_ids, unwrap
from ..redact import first_line
from ..settings import Settings, parse_int
from ..sources.r2z2 import DEFAULT_BASE_URL, MAX_REQUESTS_PER_SECOND, R2Z2Client
from ..sources.wanderer_map import MapClient, TrackedList
from . import feed_state

log = logging.getLogger(__name__)


# -- settings --------------------------------------------------------------------------


def parse_seconds(variable: str, raw: str, low: float, high: float) -> float:
    """A duration in seconds (fractions allowed) within [low, high]."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(variable, f"{raw!r} is not a number of seconds") from None
    if not low <= value <= high or value != value:
        raise ConfigError(variable, f"{raw.strip()} is out of range ({low:g}..{high:g} seconds)")
    return value


def parse_http_url(variable: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(variable, f"{value!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(variable, f"{value!r} has a bad port") from None
    return value


def parse_character_ids(variable: str, raw: str) -> tuple[int, ...]:
    """Comma (or space) separated EVE character ids."""
    ids: list[int] = []
    for part in raw.replace(",", " ").split():
        try:
            value = int(part)
        except ValueError:
            raise ConfigError(variable, f"{part!r} is not a character id") from None
        if value <= 0:
            raise ConfigError(variable, f"{part!r} is not a character id")
        if value not in ids:
            ids.append(value)
    return tuple(ids)


@dataclass(frozen=True)
class HostSettings:
    """Settings of `wn-persist run` (read from `Settings.extra`)."""

    r2z2_base_url: str = DEFAULT_BASE_URL
    r2z2_requests_per_second: int = 19
    r2z2_timeout: float = 10.0
    r2z2_not_found_wait: float = 6.0
    r2z2_max_backoff: float = 60.0
    map_url: str | None = None
    map_name: str | None = None
    map_api_key: str | None = field(default=None, repr=False)
    map_refresh_seconds: float = 300.0
    map_timeout: float = 10.0
    static_ids: tuple[int, ...] = ()
    progress_seconds: float = 60.0
    checkpoint_seconds: float = 5.0
    flush_timeout: float = 20.0
    max_queued: int = 1000
    user_agent_contact: str | None = None

    @property
    def uses_map(self) -> bool:
        return self.map_url is not None


def host_settings(settings: Settings, track: Iterable[str] = ()) -> HostSettings:
    """Parse the host's variables; raise ConfigError naming the first bad one.

    `track` holds the `--track` values (added to `TRACKED_CHARACTER_IDS`).
    """
    values = settings.extra

    def get(name: str) -> str | None:
        value = values.get(name)
        return value if value is not None and value.strip() != "" else None

    def seconds(name: str, default: float, low: float, high: float) -> float:
        raw = get(name)
        return default if raw is None else parse_seconds(name, raw, low, high)

    static: list[int] = []
    if get("TRACKED_CHARACTER_IDS"):
        static.extend(parse_character_ids("TRACKED_CHARACTER_IDS", values["TRACKED_CHARACTER_IDS"]))
    for raw in track:
        static.extend(i for i in parse_character_ids("--track", raw) if i not in static)

    map_vars = {name: get(name) for name in ("MAP_URL", "MAP_NAME", "MAP_API_KEY")}
    if any(map_vars.values()):
        for name, value in map_vars.items():
            if value is None:
                given = ", ".join(n for n, v in map_vars.items() if v)
                raise ConfigError(name, f"is not set ({given} set: the map needs all three)")
    elif not static:
        raise ConfigError(
            "TRACKED_CHARACTER_IDS",
            "no tracked characters: set MAP_URL, MAP_NAME and MAP_API_KEY, "
            "or TRACKED_CHARACTER_IDS, or pass --track ID",
        )

    rate = get("R2Z2_REQUESTS_PER_SECOND")
    return HostSettings(
        r2z2_base_url=parse_http_url("R2Z2_BASE_URL", get("R2Z2_BASE_URL") or DEFAULT_BASE_URL),
        r2z2_requests_per_second=(
            19
            if rate is None
            else parse_int("R2Z2_REQUESTS_PER_SECOND", rate, 1, MAX_REQUESTS_PER_SECOND)
        ),
        r2z2_timeout=seconds("R2Z2_TIMEOUT", 10.0, 0.1, 300),
        r2z2_not_found_wait=seconds("R2Z2_NOT_FOUND_WAIT", 6.0, 0.01, 600),
        r2z2_max_backoff=seconds("R2Z2_MAX_BACKOFF", 60.0, 0.01, 3600),
        map_url=parse_http_url("MAP_URL", map_vars["MAP_URL"]) if map_vars["MAP_URL"] else None,
        map_name=(map_vars["MAP_NAME"] or "").strip() or None,
        map_api_key=(map_vars["MAP_API_KEY"] or "").strip() or None,
        map_refresh_seconds=seconds("MAP_REFRESH_SECONDS", 300.0, 0.05, 86_400),
        map_timeout=seconds("MAP_TIMEOUT", 10.0, 0.1, 300),
        static_ids=tuple(static),
        progress_seconds=seconds("PROGRESS_INTERVAL_SECONDS", 60.0, 0.05, 86_400),
        checkpoint_seconds=seconds("HOST_CHECKPOINT_SECONDS", 5.0, 0.0, 3600),
        flush_timeout=seconds("HOST_FLUSH_TIMEOUT", 20.0, 0.1, 3600),
        max_queued=(
            1000
            if get("HOST_MAX_QUEUED") is None
            else parse_int("HOST_MAX_QUEUED", values["HOST_MAX_QUEUED"], 1, 10_000_000)
        ),
        user_agent_contact=get("USER_AGENT_CONTACT"),
    )


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


def _as_mapping(value: Any) -> Mapping[str, Any]:
    """A plugin's `stats()` answer as a mapping (a dict, `as_dict()`, or a dataclass)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return {}


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
    checkpoints: int = 0


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
        options: HostSettings,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        feed: R2Z2Client | None = None,
        map_client: MapClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.options = options
        self.pm = plugin_manager or make_plugin_manager()
        self.feed = feed or R2Z2Client(
            options.r2z2_base_url,
            requests_per_second=options.r2z2_requests_per_second,
            timeout=options.r2z2_timeout,
            not_found_wait=options.r2z2_not_found_wait,
            max_backoff=options.r2z2_max_backoff,
            contact=options.user_agent_contact,
        )
        self.map_client = map_client
        if self.map_client is None and options.uses_map:
            self.map_client = MapClient(
                options.map_url or "",
                options.map_name or "",
                options.map_api_key or "",
                timeout=options.map_timeout,
                contact=options.user_agent_contact,
            )
        self.counters = HostCounters()
        self.stop_event = threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._map_list: TrackedList | None = None
        self._pending: list[Mapping[str, Any]] | None = None
        self._tracked_ids: frozenset[int] = frozenset(options.static_ids)
        self._handed_over: int | None = None
        """Last sequence handed to the plugins."""
        self._saved: int | None = None
        """Last sequence stored in the database."""
        self._last_kill_time: dt.datetime | None = None
        self._started = False
        self._db: Database | None = None
        self._given_up_at_start = 0
        self._warned_given_up = False

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
            log.warning(
                "map API %s: %s; keeping the last known list (%s)",
                self.map_client.url,
                exc,
                f"{len(self._map_list.ids)} characters" if self._map_list else "none yet",
            )
            return False
        with self._lock:
            if self._map_list is not None and fresh.entries == self._map_list.entries:
                return False
            self._map_list = fresh
            self._pending = self._tracked_entries()
            self._tracked_ids = fresh.ids | frozenset(self.options.static_ids)
        log.info("map %s: %d tracked characters", self.options.map_name, len(fresh.ids))
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
        next_map = now + self.options.map_refresh_seconds if self.map_client else None
        next_progress = now + self.options.progress_seconds
        while True:
            due = min(t for t in (next_map, next_progress) if t is not None)
            if self.stop_event.wait(max(0.0, due - self._clock())):
                return
            now = self._clock()
            if next_map is not None and now >= next_map:
                self.refresh_map()
                next_map = self._clock() + self.options.map_refresh_seconds
            if now >= next_progress:
                log.info("%s", self.progress_line())
                next_progress = self._clock() + self.options.progress_seconds

    def plugin_stats(self) -> dict[str, Any]:
        """The merged `stats()` of plugins that offer it."""
        merged: dict[str, Any] = {}
        for plugin in self.pm.get_plugins():
            stats = getattr(plugin, "stats", None)
            if callable(stats):
                try:
                    merged.update(_as_mapping(stats()))
                except Exception as exc:  # noqa: BLE001 - a progress line never fails
                    log.debug("stats() of %r failed: %s", plugin, exc)
        return merged

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
        stored = stats.get("rows_written", "?")
        queue = stats.get("queued", "?")
        dropped = stats.get("dropped")
        return (
            f"progress: seen={c.seen} matched={c.matched} stored={stored} "
            f"sequence={current if current is not None else '-'} "
            f"latest={latest if latest is not None else '?'} lag={lag} kill_age={age} "
            f"queue={queue} tracked={len(self._tracked_ids)} skipped={c.skipped_sequences}"
            + (f" dropped={dropped}" if dropped else "")
        )

    # -- checkpoints -------------------------------------------------------------------

    def _flush_plugins(self, timeout: float) -> bool:
        """Ask plugins that can to write what they queued; False if one could not."""
        ok = True
        for plugin in self.pm.get_plugins():
            flush = getattr(plugin, "flush", None)
            if not callable(flush):
                continue
            try:
                if flush(timeout) is False:
                    ok = False
            except Exception as exc:  # noqa: BLE001 - never crash on a plugin
                log.warning("flush() of %r failed: %s", plugin, exc)
                ok = False
        return ok

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

    def _nothing_given_up(self) -> bool:
        """False once a plugin reports mails it `dropped` (queue full) or `lost` (given up
        at shutdown) during this run: the position then stays where it was, so the next
        start reads those mails again (writes are idempotent)."""
        stats = self.plugin_stats()
        given_up = sum(v for k in ("dropped", "lost") if isinstance(v := stats.get(k, 0), int))
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
        if not self._nothing_given_up():
            return False
        try:
            self._save(sequence)
        except Exception as exc:  # noqa: BLE001 - retried at the next checkpoint
            log.warning("could not save the feed position %d: %s", sequence, exc)
            self._reset_connection()
            return False
        return True

    def _wait_for_queue(self) -> None:
        """Backpressure: the feed is pulled, so when a plugin's queue (`queued` in its
        stats) reaches HOST_MAX_QUEUED, stop reading until it is written; nothing is ever
        dropped for want of room and the feed keeps the objects meanwhile."""
        queued = self.plugin_stats().get("queued")
        if not isinstance(queued, int) or queued < self.options.max_queued:
            return
        log.info(
            "plugin queue at %d mails (HOST_MAX_QUEUED=%d): pausing the feed until it is written",
            queued,
            self.options.max_queued,
        )
        while not self.stop_event.is_set():
            if self._flush_plugins(min(self.options.flush_timeout, 5.0)):
                return
            log.warning("plugin queue still not written; the feed stays paused")

    # -- mails -------------------------------------------------------------------------

    def _note_mail(self, envelope: Mapping[str, Any]) -> None:
        try:
            found = unwrap(envelope)
            victim, attackers = participant_ids(found)
            self._last_kill_time = parse_time(found.body.get("killmail_time"))
        except (MalformedKillmail, ValueError, TypeError) as exc:
            self.counters.malformed += 1
            log.debug("mail %s: %s", envelope.get("killmail_id"), exc)
            return
        tracked = self._tracked_ids
        if (victim is not None and victim in tracked) or any(a in tracked for a in attackers):
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
        stats = self.plugin_stats()
        self._given_up_at_start = sum(
            v for k in ("dropped", "lost") if isinstance(v := stats.get(k, 0), int)
        )
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
                    self.counters.skipped_sequences += delivery.skipped
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
            if ticker is not None:
                ticker.join(timeout=5)
            self._shutdown()
        log.info("%s", self.progress_line())
        log.info("stopped at sequence %s", self._saved if self._saved is not None else "-")
        return RunResult(0, self._saved, self.counters)

    def _shutdown(self) -> None:
        if not self._started:
            if self._db is not None:
                self._db.close()
            return
        flushed = self._flush_plugins(self.options.flush_timeout)
        shutdown_ok = True
        try:
            self.pm.hook.on_shutdown()
        except Exception as exc:  # noqa: BLE001 - report, do not save past unwritten mails
            shutdown_ok = False
            log.error("on_shutdown failed: %s", exc)
        pending = self._handed_over is not None and self._handed_over != self._saved
        if pending and flushed and shutdown_ok and self._nothing_given_up():
            try:
                self._save(self._handed_over)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                log.error("could not save the feed position %s: %s", self._handed_over, exc)
        elif pending:
            log.warning(
                "the plugins did not confirm every write; the feed position stays at %s "
                "and the next start reads again from there (writes are idempotent)",
                self._saved,
            )
        if self._db is not None:
            self._db.close()
