"""Settings: one declaration table, one typed frozen object, validated once at startup.

`SETTINGS` declares every variable once (name, where its value lives on `Settings`, how
it is parsed and checked, default, help, whether it is secret); `load_settings()` reads
the raw values, parses each through its entry and builds the frozen `Settings` with its
grouped sub-objects (`writer`, `esi`, `feed`, `map`, `host`, `http`, `reports`,
`verify`). Nothing else in the package reads the environment or parses a setting.

Precedence, highest first: values a host passes to `on_startup(config)`, the process
environment, the `.env` file in the current directory, the defaults in the table. An
empty value means "unset" (docker-compose passes unset variables as empty strings).
A bad value raises `ConfigError`, whose message is one line naming the variable; secrets
never appear in a message or a repr.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from croniter import CroniterBadDateError, croniter
from dotenv import dotenv_values

from .errors import ConfigError
from .redact import mask_url

DEFAULT_SQLITE_PATH = "wn_persist.db"
"""Zero-config database: a SQLite file in the current directory."""
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"
SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres")

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
"""`wn-persist serve` listens here unless PERSISTENCE_HTTP_PORT / --port say otherwise."""

MIN_POOL_SIZE = 2
"""The writer thread keeps a connection open; the scheduler's jobs need a second one."""

MAX_EVE_ID = 2**63 - 1
"""EVE ids are positive 64-bit integers (what a BIGINT column holds)."""

CRON_HORIZON_YEARS = 5
"""A cron expression that matches no time within this many years never fires."""

DEFAULT_ESI_BASE_URL = "https://esi.evetech.net"
ESI_VERSION_PATH = "/latest"
"""The old version path; ESI now versions by `X-Compatibility-Date`, so it is dropped."""
DEFAULT_ESI_COMPATIBILITY_DATE = dt.date(2025, 9, 30)
"""The ESI behaviour this client was checked against (sent as `X-Compatibility-Date`)."""
DEFAULT_EVEREF_BASE_URL = "https://data.everef.net"
DEFAULT_SDE_BASE_URL = "https://www.fuzzwork.co.uk/dump/latest"
DEFAULT_ZKILL_HISTORY_URL = "https://r2z2.zkillboard.com/history"
DEFAULT_R2Z2_BASE_URL = "https://r2z2.zkillboard.com"
DEFAULT_ZKILLBOARD_API_URL = "https://zkillboard.com/api"
MAX_R2Z2_REQUESTS_PER_SECOND = 20
"""zKillboard allows 20 requests a second per IP address."""
DEFAULT_SERVE_PORT = 8080
"""The HTTP API's port for `serve` when `PERSISTENCE_HTTP_PORT` is unset."""

MAP_VARIABLES = ("MAP_URL", "MAP_NAME", "MAP_API_KEY")
"""The map API needs all three or none."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# -- kinds: how a raw string becomes a typed value -----------------------------------------
# `parse` raises ValueError(problem); the loader turns it into ConfigError(variable, problem).


class Kind:
    """How one variable's raw string is parsed and checked."""

    masks_its_messages = False
    """True when `parse`'s problems never quote a secret (they show it masked)."""

    def parse(self, raw: str) -> Any:
        return raw.strip()

    def describe(self) -> str:
        """The accepted values, for docs and help ('' when any text goes)."""
        return ""

    def mask(self, value: Any) -> str:
        """A secret value as it may be shown."""
        return "'***'"


@dataclass(frozen=True)
class Text(Kind):
    """Any text (surrounding spaces removed)."""


@dataclass(frozen=True)
class Token(Kind):
    """A secret token: at least `min_length` characters, no spaces (hard to guess, easy to
    paste). Its problems never quote it."""

    min_length: int = 16
    masks_its_messages = True

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if len(value) < self.min_length or any(c.isspace() for c in value):
            raise ValueError(f"must be at least {self.min_length} characters, without spaces")
        return value

    def describe(self) -> str:
        return f"at least {self.min_length} characters, no spaces"


@dataclass(frozen=True)
class Flag(Kind):
    """true/false, yes/no, on/off, 1/0."""

    def parse(self, raw: str) -> bool:
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not true or false")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Integer(Kind):
    """A whole number within low..high; `why` explains the lower bound when it is not
    obvious."""

    low: int
    high: int
    why: str = ""

    def parse(self, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if not self.low <= value <= self.high:
            reason = f": {self.why}" if self.why else ""
            raise ValueError(f"{value} is out of range ({self.low}..{self.high}){reason}")
        return value

    def describe(self) -> str:
        return f"{self.low}..{self.high}"


BYTE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
"""Suffixes a byte size may carry (case-insensitive; binary units)."""


def format_bytes(value: int) -> str:
    """`value` in the largest binary unit that divides it (`268435456` -> `256MiB`)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


@dataclass(frozen=True)
class ByteSize(Kind):
    """A size in bytes within low..high: a whole number, optionally with a binary unit
    (`KiB`, `MiB`, `GiB`)."""

    low: int
    high: int

    def parse(self, raw: str) -> int:
        text = raw.strip().replace(" ", "")
        split = len(text) - len(text.lstrip("0123456789"))
        digits, unit = text[:split], BYTE_UNITS.get(text[split:].lower())
        if not digits.isdigit() or not digits.isascii() or unit is None:
            raise ValueError(f"{raw!r} is not a size (bytes, or a number with KiB, MiB or GiB)")
        value = int(digits) * unit
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{raw.strip()} is out of range "
                f"({format_bytes(self.low)}..{format_bytes(self.high)})"
            )
        return value

    def describe(self) -> str:
        return f"{format_bytes(self.low)}..{format_bytes(self.high)} (bytes, or KiB/MiB/GiB)"


@dataclass(frozen=True)
class Seconds(Kind):
    """A duration in seconds (fractions allowed) within low..high."""

    low: float
    high: float

    def parse(self, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a number of seconds") from None
        if math.isnan(value) or not self.low <= value <= self.high:
            raise ValueError(f"{raw.strip()} is out of range ({self.low:g}..{self.high:g} seconds)")
        return value

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g} seconds"


@dataclass(frozen=True)
class HttpUrl(Kind):
    """An http:// or https:// URL (a trailing slash is dropped)."""

    def parse(self, raw: str) -> str:
        value = raw.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"{value!r} has a bad port") from None
        return value

    def describe(self) -> str:
        return "http(s) URL"


@dataclass(frozen=True)
class EsiRoot(HttpUrl):
    """ESI's root URL; a trailing `/latest` (the old version path) is dropped."""

    def parse(self, raw: str) -> str:
        value = super().parse(raw)
        if value.endswith(ESI_VERSION_PATH):
            value = super().parse(value.removesuffix(ESI_VERSION_PATH))
        return value

    def describe(self) -> str:
        return "http(s) URL without `/latest`"


@dataclass(frozen=True)
class Day(Kind):
    """A day, `YYYY-MM-DD`, not in the future."""

    def parse(self, raw: str) -> dt.date:
        try:
            value = dt.date.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError(f"{raw.strip()!r} is not a day (YYYY-MM-DD)") from None
        if value > dt.datetime.now(dt.UTC).date():
            raise ValueError(f"{value} is in the future")
        return value

    def describe(self) -> str:
        return "YYYY-MM-DD, not in the future"


@dataclass(frozen=True)
class Cron(Kind):
    """A 5-field cron expression that fires at least once within `CRON_HORIZON_YEARS`."""

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{raw!r} is not a 5-field cron expression")
        try:
            croniter(
                value, dt.datetime.now(dt.UTC), max_years_between_matches=CRON_HORIZON_YEARS
            ).get_next(dt.datetime)
        except CroniterBadDateError:
            raise ValueError(
                f"{value!r} never fires (no time matches within {CRON_HORIZON_YEARS} years)"
            ) from None
        return value

    def describe(self) -> str:
        return "5-field cron expression, UTC"


def parse_eve_id(text: str, what: str = "EVE id") -> int:
    """One EVE id: digits only, 1..2**63-1. Raises ValueError naming the problem."""
    value = text.strip()
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"{text!r} is not a {what}")
    number = int(value)
    if not 1 <= number <= MAX_EVE_ID:
        raise ValueError(f"{text!r} is not a {what}: out of range (1..{MAX_EVE_ID})")
    return number


@dataclass(frozen=True)
class EveIds(Kind):
    """EVE ids separated by commas or spaces (duplicates dropped, order kept)."""

    what: str = "character id"

    def parse(self, raw: str) -> tuple[int, ...]:
        ids: list[int] = []
        for part in raw.replace(",", " ").split():
            value = parse_eve_id(part, self.what)
            if value not in ids:
                ids.append(value)
        return tuple(ids)

    def describe(self) -> str:
        return f"{self.what}s 1..2**63-1, comma-separated"


@dataclass(frozen=True)
class DatabaseUrl(Kind):
    """`sqlite:///path` or `postgresql://user:password@host:port/db`."""

    masks_its_messages = True

    def parse(self, raw: str) -> str:
        value = raw.strip()
        shown = mask_url(value)
        scheme = urlsplit(value).scheme.split("+", 1)[0]
        if scheme not in SUPPORTED_SCHEMES:
            raise ValueError(
                f"{shown!r} has an unsupported scheme (use sqlite:/// or postgresql://)"
            )
        try:
            port = urlsplit(value).port
        except ValueError:
            raise ValueError(
                f"{shown!r} has a bad port (or a password with an unencoded '/', '?', "
                "'#' or '@': percent-encode it, e.g. '/' as %2F)"
            ) from None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range (1..65535)")
        return value

    def describe(self) -> str:
        return "sqlite:/// or postgresql:// URL"

    def mask(self, value: Any) -> str:
        return repr(mask_url(str(value)))


@dataclass(frozen=True)
class WebhookUrl(Kind):
    """A secret https:// (or http://) webhook URL; its problems never quote it."""

    masks_its_messages = True

    def parse(self, raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("is not an http:// or https:// URL")
        return value

    def describe(self) -> str:
        return "http(s) URL"


# -- the declaration table -------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One variable: its name, where its value lives on `Settings` (dotted for a group;
    None for a part of another value: the `POSTGRES_*` parts of `database_url`), its kind,
    default (typed; None means unset), help, and whether it is secret (masked in reprs)."""

    name: str
    attribute: str | None
    kind: Kind
    default: Any
    help: str
    secret: bool = False

    @property
    def shown_default(self) -> str:
        """The default as written in docs: '' when unset."""
        value = self.default
        if value is None or value == ():
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(self.kind, ByteSize):
            return format_bytes(value)
        return str(value)


SETTINGS: tuple[Setting, ...] = (
    # database and the plugin
    Setting(
        "ENABLE_PERSISTENCE", "enable_persistence", Flag(), False,
        "turns the plugin on inside a host (`run` always turns it on); other commands "
        "work regardless",
    ),
    Setting(
        "DATABASE_URL", "database_url", DatabaseUrl(), None,
        "`sqlite:///path.db` or `postgresql://user:pass@host:port/db`; wins over "
        "`POSTGRES_*`; unset (with no `POSTGRES_HOST`): SQLite at `./wn_persist.db`",
        secret=True,
    ),
    Setting(
        "POSTGRES_HOST", None, Text(), None,
        "when set (and no `DATABASE_URL`), use PostgreSQL with the `POSTGRES_*` values",
    ),
    Setting("POSTGRES_PORT", None, Integer(1, 65535), 5432, "PostgreSQL port"),
    Setting("POSTGRES_USER", None, Text(), None, "PostgreSQL user"),
    Setting("POSTGRES_PASSWORD", None, Text(), None, "PostgreSQL password", secret=True),
    Setting("POSTGRES_DB", None, Text(), "wanderer_notifier", "PostgreSQL database name"),
    Setting(
        "POSTGRES_POOL_SIZE", "pool_size",
        Integer(
            MIN_POOL_SIZE, 1000,
            why="the writer keeps one connection and the scheduled jobs need another",
        ),
        None,
        "size of the PostgreSQL connection pool (peewee's `playhouse.pool`); at least 2; "
        "unset: no pool",
    ),
    # statistics
    Setting(
        "PERSISTENCE_RETENTION_DAYS", "retention_days", Integer(1, 100_000), 180,
        "how long individual killmails are kept (never before their statistics are "
        "aggregated, never inside an open week or month)",
    ),
    Setting(
        "PERSISTENCE_AGGREGATION_SCHEDULE", "aggregation_schedule", Cron(), "0 0 * * *",
        "5-field cron expression (UTC) for aggregation, then retention; one that never "
        "fires is refused",
    ),
    # the writer
    Setting(
        "PERSISTENCE_QUEUE_SIZE", "writer.queue_size", Integer(1, 10_000_000), 10_000,
        "killmails waiting to be written; when full, the newest is dropped and counted",
    ),
    Setting(
        "PERSISTENCE_QUEUE_BYTES", "writer.queue_bytes", ByteSize(1024**2, 64 * 1024**3),
        256 * 1024**2,
        "estimated memory of the killmails waiting to be written (base + per attacker + per "
        "item, see docs/standalone.md); when full, the newest is dropped and counted",
    ),
    Setting(
        "PERSISTENCE_BATCH_SIZE", "writer.batch_rows", Integer(1, 5_000), 500,
        "rows per write transaction",
    ),
    Setting(
        "PERSISTENCE_SHUTDOWN_TIMEOUT", "writer.shutdown_timeout", Seconds(0, 86_400), 20.0,
        "seconds the whole shutdown may take (writing the queue, retrying an unreachable "
        "database, saving the feed position); mails still unwritten then are logged with "
        "their ids and `run` exits 1",
    ),
    # enrichment, static data, history
    Setting(
        "PERSISTENCE_ESI_ENRICHMENT", "esi_enrichment", Flag(), True,
        "the scheduled job asks ESI for names and unknown systems, and for market prices to "
        "value mails without a zKillboard value (also `backfill`; see pricing.md)",
    ),
    Setting(
        "ESI_BASE_URL", "esi.base_url", EsiRoot(), DEFAULT_ESI_BASE_URL,
        "ESI root (names, regions, killmail bodies); a trailing `/latest` is dropped",
    ),
    Setting(
        "ESI_COMPATIBILITY_DATE", "esi.compatibility_date", Day(),
        DEFAULT_ESI_COMPATIBILITY_DATE,
        "the ESI behaviour asked for, sent as `X-Compatibility-Date`",
    ),
    Setting("ESI_TIMEOUT", "esi.timeout", Seconds(1, 600), 10.0, "seconds per ESI request"),
    Setting(
        "ESI_MAX_RETRIES", "esi.max_retries", Integer(0, 100), 4,
        "retries of a failed ESI request",
    ),
    Setting(
        "ESI_MAX_WAIT", "esi.max_wait", Seconds(0, 3600), 120.0,
        "longest single wait ESI may ask for (error limit, Retry-After) before it counts "
        "as unavailable",
    ),
    Setting(
        "SDE_BASE_URL", "sde_base_url", HttpUrl(), DEFAULT_SDE_BASE_URL,
        "the static data dump's `latest` folder for `universe import --download` "
        "(`{base}/csv/<table>.csv`, else `{base}/<table>.csv.bz2`)",
    ),
    Setting(
        "ZKILL_HISTORY_URL", "zkill_history_url", HttpUrl(), DEFAULT_ZKILL_HISTORY_URL,
        "zKillboard history for `backfill --zkill-history` (day files at `/YYYYMMDD.json`)",
    ),
    Setting(
        "EVEREF_BASE_URL", "everef_base_url", HttpUrl(), DEFAULT_EVEREF_BASE_URL,
        "EVE Ref's data root: daily killmail archives at "
        "`/killmails/YYYY/killmails-YYYY-MM-DD.tar.bz2` (bodies for `--zkill-history`)",
    ),
    Setting(
        "USER_AGENT_CONTACT", "user_agent_contact", Text(), None,
        "an e-mail or URL added to the User-Agent of outgoing requests, so the services "
        "can reach you",
    ),
    # the standalone host (`wn-persist run`)
    Setting(
        "TRACKED_CHARACTER_IDS", "host.static_ids", EveIds(), (),
        "comma-separated EVE character ids to track (`run`)",
    ),
    Setting(
        "MAP_URL", "map.url", HttpUrl(), None,
        "base URL of your Wanderer instance; with `MAP_NAME` and `MAP_API_KEY` (all three "
        "or none)",
    ),
    Setting(
        "MAP_NAME", "map.name", Text(), None,
        "the map's slug (`/api/maps/{slug}/tracked-characters`)",
    ),
    Setting(
        "MAP_API_KEY", "map.api_key", Text(), None,
        "the map's API token (sent as `Authorization: Bearer ...`)",
        secret=True,
    ),
    Setting(
        "MAP_REFRESH_SECONDS", "map.refresh_seconds", Seconds(0.05, 86_400), 300.0,
        "how often the map's list is fetched again",
    ),
    Setting(
        "MAP_TIMEOUT", "map.timeout", Seconds(0.1, 300), 10.0,
        "seconds before a map request counts as failed",
    ),
    Setting(
        "R2Z2_BASE_URL", "feed.base_url", HttpUrl(), DEFAULT_R2Z2_BASE_URL,
        "the R2Z2 feed root (`/ephemeral/sequence.json`, `/ephemeral/{N}.json`)",
    ),
    Setting(
        "R2Z2_REQUESTS_PER_SECOND", "feed.requests_per_second",
        Integer(1, MAX_R2Z2_REQUESTS_PER_SECOND), 19,
        "request pacing (zKillboard allows 20/s per IP)",
    ),
    Setting(
        "R2Z2_NOT_FOUND_WAIT", "feed.not_found_wait", Seconds(0.01, 600), 6.0,
        "seconds to wait after a 404 (sequence not published yet)",
    ),
    Setting(
        "R2Z2_TIMEOUT", "feed.timeout", Seconds(0.1, 300), 10.0,
        "seconds before a feed request counts as failed",
    ),
    Setting(
        "R2Z2_MAX_BACKOFF", "feed.max_backoff", Seconds(0.01, 3600), 60.0,
        "longest wait between retries after errors",
    ),
    Setting(
        "PROGRESS_INTERVAL_SECONDS", "host.progress_seconds", Seconds(0.05, 86_400), 60.0,
        "how often the progress line is logged",
    ),
    Setting(
        "HOST_CHECKPOINT_SECONDS", "host.checkpoint_seconds", Seconds(0, 3600), 5.0,
        "how often the feed position is saved (after the plugin confirms)",
    ),
    Setting(
        "HOST_FLUSH_TIMEOUT", "host.flush_timeout", Seconds(0.1, 3600), 15.0,
        "how long a checkpoint waits for queued writes (a stop request ends the wait)",
    ),
    Setting(
        "HOST_MAX_QUEUED", "host.max_queued", Integer(1, 10_000_000), 1000,
        "pause reading the feed while the plugin has this many mails waiting to be written",
    ),
    # the HTTP API
    Setting(
        "PERSISTENCE_HTTP_HOST", "http.host", Text(), "127.0.0.1",
        "address the HTTP API listens on",
    ),
    Setting(
        "PERSISTENCE_HTTP_PORT", "http.port", Integer(1, 65535), None,
        f"port of the HTTP API; unset: `run` serves no API and `serve` uses "
        f"{DEFAULT_SERVE_PORT}",
    ),
    Setting(
        "PERSISTENCE_API_TOKEN", "http.api_token", Token(), None,
        "bearer token the HTTP API requires; unset: no token",
        secret=True,
    ),
    # reports
    Setting(
        "DISCORD_WEBHOOK_URL", "reports.webhook_url", WebhookUrl(), None,
        "Discord webhook the reports are posted to (`report --webhook` overrides it)",
        secret=True,
    ),
    Setting(
        "PERSISTENCE_REPORT_SCHEDULE", "reports.schedule", Cron(), None,
        "5-field cron expression (UTC) for posting the weekly report of the last complete "
        "week; unset: no scheduled report",
    ),
    # verification against zKillboard
    Setting(
        "ZKILLBOARD_API_URL", "verify.api_url", HttpUrl(), DEFAULT_ZKILLBOARD_API_URL,
        "zKillboard's API root for `verify` (`/characterID/{id}/year/{Y}/month/{M}/page/{n}/`; "
        "at most one request a second)",
    ),
    Setting(
        "PERSISTENCE_VERIFY_SCHEDULE", "verify.schedule", Cron(), None,
        "5-field cron expression (UTC) for checking the last `PERSISTENCE_VERIFY_DAYS` "
        "days of every tracked character against zKillboard and repairing what is "
        "missing; unset: no scheduled verification",
    ),
    Setting(
        "PERSISTENCE_VERIFY_DAYS", "verify.days", Integer(1, 366), 7,
        "days (today included) the scheduled verification checks",
    ),
)  # fmt: skip

SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
_BY_ATTRIBUTE: Mapping[str, Setting] = {s.attribute: s for s in SETTINGS if s.attribute}


def _default(name: str) -> Any:
    return SETTINGS_BY_NAME[name].default


def _masked_repr(obj: Any, group: str) -> str:
    """A dataclass repr with the table's secret values masked."""
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        setting = _BY_ATTRIBUTE.get(f"{group}.{f.name}" if group else f.name)
        if setting is not None and setting.secret and value is not None:
            parts.append(f"{f.name}={setting.kind.mask(value)}")
        else:
            parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


# -- the typed settings ------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class WriterSettings:
    """How the writer queues and batches (`settings.writer`)."""

    queue_size: int = _default("PERSISTENCE_QUEUE_SIZE")
    """Matched mails waiting to be written; beyond that new mails are dropped."""
    queue_bytes: int = _default("PERSISTENCE_QUEUE_BYTES")
    """Estimated bytes of the mails waiting to be written; beyond that new mails are
    dropped (`ingest.match.estimated_size`)."""
    batch_rows: int = _default("PERSISTENCE_BATCH_SIZE")
    """Rows per transaction (a batch closes early when the queue is empty)."""
    shutdown_timeout: float = _default("PERSISTENCE_SHUTDOWN_TIMEOUT")
    """Seconds `stop()` keeps retrying an unreachable database before giving up."""
    retry_initial: float = 0.5
    """First wait after a failed write (not a variable)."""
    retry_max: float = 30.0
    """Longest wait between write retries (not a variable)."""

    def __repr__(self) -> str:
        return _masked_repr(self, "writer")


@dataclass(frozen=True, repr=False)
class EsiSettings:
    """How the ESI client reaches ESI (`settings.esi`)."""

    base_url: str = _default("ESI_BASE_URL")
    timeout: float = _default("ESI_TIMEOUT")
    max_retries: int = _default("ESI_MAX_RETRIES")
    max_wait: float = _default("ESI_MAX_WAIT")
    """Longest single wait (error-limit reset, Retry-After) before giving up as unavailable;
    a rate-limit group's 429 is waited out regardless (its bucket refills within its window)."""
    compatibility_date: dt.date = _default("ESI_COMPATIBILITY_DATE")

    def __repr__(self) -> str:
        return _masked_repr(self, "esi")


@dataclass(frozen=True, repr=False)
class FeedSettings:
    """zKillboard's R2Z2 feed, read by `wn-persist run` (`settings.feed`)."""

    base_url: str = _default("R2Z2_BASE_URL")
    requests_per_second: int = _default("R2Z2_REQUESTS_PER_SECOND")
    timeout: float = _default("R2Z2_TIMEOUT")
    not_found_wait: float = _default("R2Z2_NOT_FOUND_WAIT")
    max_backoff: float = _default("R2Z2_MAX_BACKOFF")

    def __repr__(self) -> str:
        return _masked_repr(self, "feed")


@dataclass(frozen=True, repr=False)
class MapSettings:
    """The Wanderer map API (`settings.map`): `url`, `name` and `api_key` are all set or
    all None."""

    url: str | None = _default("MAP_URL")
    name: str | None = _default("MAP_NAME")
    api_key: str | None = _default("MAP_API_KEY")
    refresh_seconds: float = _default("MAP_REFRESH_SECONDS")
    timeout: float = _default("MAP_TIMEOUT")

    @property
    def configured(self) -> bool:
        return self.url is not None

    def __repr__(self) -> str:
        return _masked_repr(self, "map")


@dataclass(frozen=True, repr=False)
class HostSettings:
    """The standalone host's own settings (`settings.host`)."""

    static_ids: tuple[int, ...] = _default("TRACKED_CHARACTER_IDS")
    """`TRACKED_CHARACTER_IDS`: characters tracked besides the map's list."""
    progress_seconds: float = _default("PROGRESS_INTERVAL_SECONDS")
    checkpoint_seconds: float = _default("HOST_CHECKPOINT_SECONDS")
    flush_timeout: float = _default("HOST_FLUSH_TIMEOUT")
    max_queued: int = _default("HOST_MAX_QUEUED")

    def __repr__(self) -> str:
        return _masked_repr(self, "host")


@dataclass(frozen=True, repr=False)
class HttpSettings:
    """The HTTP API (`settings.http`)."""

    host: str = _default("PERSISTENCE_HTTP_HOST")
    port: int | None = _default("PERSISTENCE_HTTP_PORT")
    """None: `run` serves no API; `serve` uses `serve_port`."""
    api_token: str | None = _default("PERSISTENCE_API_TOKEN")

    @property
    def serve_port(self) -> int:
        return DEFAULT_SERVE_PORT if self.port is None else self.port

    def __repr__(self) -> str:
        return _masked_repr(self, "http")


@dataclass(frozen=True, repr=False)
class ReportSettings:
    """The Discord report (`settings.reports`)."""

    webhook_url: str | None = _default("DISCORD_WEBHOOK_URL")
    schedule: str | None = _default("PERSISTENCE_REPORT_SCHEDULE")
    """None: no scheduled report."""

    def __repr__(self) -> str:
        return _masked_repr(self, "reports")


@dataclass(frozen=True, repr=False)
class VerifySettings:
    """Checking the store against zKillboard's API (`settings.verify`)."""

    api_url: str = _default("ZKILLBOARD_API_URL")
    schedule: str | None = _default("PERSISTENCE_VERIFY_SCHEDULE")
    """None: no scheduled verification."""
    days: int = _default("PERSISTENCE_VERIFY_DAYS")

    def __repr__(self) -> str:
        return _masked_repr(self, "verify")


GROUPS: Mapping[str, type] = {
    "writer": WriterSettings,
    "esi": EsiSettings,
    "feed": FeedSettings,
    "map": MapSettings,
    "host": HostSettings,
    "http": HttpSettings,
    "reports": ReportSettings,
    "verify": VerifySettings,
}
"""Settings' sub-objects, by attribute name (the prefix of `Setting.attribute`)."""


@dataclass(frozen=True, repr=False)
class Settings:
    """Validated settings. `database_url` is always set (may hold a password: never log it;
    use `masked_database_url`; the repr masks it)."""

    enable_persistence: bool = _default("ENABLE_PERSISTENCE")
    database_url: str = DEFAULT_DATABASE_URL
    pool_size: int | None = _default("POSTGRES_POOL_SIZE")
    retention_days: int = _default("PERSISTENCE_RETENTION_DAYS")
    aggregation_schedule: str = _default("PERSISTENCE_AGGREGATION_SCHEDULE")
    esi_enrichment: bool = _default("PERSISTENCE_ESI_ENRICHMENT")
    sde_base_url: str = _default("SDE_BASE_URL")
    zkill_history_url: str = _default("ZKILL_HISTORY_URL")
    everef_base_url: str = _default("EVEREF_BASE_URL")
    user_agent_contact: str | None = _default("USER_AGENT_CONTACT")
    writer: WriterSettings = field(default_factory=WriterSettings)
    esi: EsiSettings = field(default_factory=EsiSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    map: MapSettings = field(default_factory=MapSettings)
    host: HostSettings = field(default_factory=HostSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)

    @property
    def masked_database_url(self) -> str:
        return mask_url(self.database_url)

    def __repr__(self) -> str:
        return _masked_repr(self, "")


# -- loading ---------------------------------------------------------------------------------


def _raw_values(
    overrides: Mapping[str, Any] | None, environ: Mapping[str, str] | None, dotenv: Path | None
) -> dict[str, str]:
    values: dict[str, str] = {}
    dotenv_path = dotenv if dotenv is not None else Path.cwd() / ".env"
    if dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[str(key)] = value if isinstance(value, str) else _stringify(value)
    return values


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    return str(value)


def _parse(setting: Setting, raw: str | None) -> Any:
    if raw is None or not raw.strip():
        return setting.default
    try:
        return setting.kind.parse(raw)
    except ValueError as exc:
        problem = str(exc)
        if setting.secret and not setting.kind.masks_its_messages and raw.strip() in problem:
            problem = "is not valid"
        raise ConfigError(setting.name, problem) from None


def _postgres_url(parsed: Mapping[str, Any]) -> str:
    user, password = parsed["POSTGRES_USER"], parsed["POSTGRES_PASSWORD"]
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    host, port = parsed["POSTGRES_HOST"], parsed["POSTGRES_PORT"]
    return f"postgresql://{auth}{host}:{port}/{quote(parsed['POSTGRES_DB'], safe='')}"


def _check_map(parsed: Mapping[str, Any]) -> None:
    given = [name for name in MAP_VARIABLES if parsed[name] is not None]
    for name in MAP_VARIABLES:
        if given and parsed[name] is None:
            raise ConfigError(name, f"is not set ({', '.join(given)} set: the map needs all three)")


VERIFY_POOL_SIZE = MIN_POOL_SIZE + 1
"""A scheduled verification runs in a thread of its own: one connection more."""


def _check_pool(parsed: Mapping[str, Any]) -> None:
    size = parsed["POSTGRES_POOL_SIZE"]
    if parsed["PERSISTENCE_VERIFY_SCHEDULE"] is not None and size is not None:
        if size < VERIFY_POOL_SIZE:
            raise ConfigError(
                "POSTGRES_POOL_SIZE",
                f"{size} is too small with PERSISTENCE_VERIFY_SCHEDULE set (at least "
                f"{VERIFY_POOL_SIZE}: the verification runs in a thread of its own)",
            )


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = None,
) -> Settings:
    """Read every variable of `SETTINGS` (overrides > environ > dotenv > default), validate
    it and build `Settings`; raise `ConfigError` on the first bad value.

    `environ` replaces the process environment and `dotenv` the `./.env` file (tests)."""
    values = _raw_values(overrides, environ, dotenv)
    parsed = {s.name: _parse(s, values.get(s.name)) for s in SETTINGS}
    _check_map(parsed)
    _check_pool(parsed)

    if parsed["DATABASE_URL"] is not None:
        database_url = parsed["DATABASE_URL"]
    elif parsed["POSTGRES_HOST"] is not None:
        database_url = _postgres_url(parsed)
    else:
        database_url = DEFAULT_DATABASE_URL

    top: dict[str, Any] = {"database_url": database_url}
    grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for setting in SETTINGS:
        if setting.attribute is None or setting.attribute == "database_url":
            continue
        group, _, name = setting.attribute.rpartition(".")
        (grouped[group] if group else top)[name] = parsed[setting.name]
    for group, cls in GROUPS.items():
        top[group] = cls(**grouped[group])
    return Settings(**top)
