"""Settings: read from the environment and a `.env` file, validated once at startup.

Precedence, highest first: values a host passes to `on_startup(config)`, the process
environment, the `.env` file in the current directory, the defaults below.
A bad value raises `ConfigError`, whose message is one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from croniter import croniter
from dotenv import dotenv_values

from .errors import ConfigError
from .redact import mask_url

DEFAULT_SQLITE_PATH = "wn_persist.db"
"""Zero-config database: a SQLite file in the current directory."""

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres")

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
"""`wn-persist serve` listens here unless PERSISTENCE_HTTP_PORT / --port say otherwise."""

MIN_POOL_SIZE = 2
"""The writer thread keeps a connection open; the scheduler's jobs need a second one."""


def parse_bool(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(variable, f"{raw!r} is not true or false")


def parse_int(variable: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(variable, f"{raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(variable, f"{value} is out of range ({low}..{high})")
    return value


def parse_cron(variable: str, raw: str) -> str:
    value = raw.strip()
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ConfigError(variable, f"{raw!r} is not a 5-field cron expression")
    return value


def _database_url(variable: str, raw: str) -> str:
    value = raw.strip()
    scheme = urlsplit(value).scheme.split("+", 1)[0]
    if scheme not in SUPPORTED_SCHEMES:
        shown = mask_url(value)
        raise ConfigError(
            variable, f"{shown!r} has an unsupported scheme (use sqlite:/// or postgresql://)"
        )
    try:
        port = urlsplit(value).port
    except ValueError:
        raise ConfigError(
            variable,
            f"{mask_url(value)!r} has a bad port (or a password with an unencoded '/', '?', "
            "'#' or '@': percent-encode it, e.g. '/' as %2F)",
        ) from None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(variable, f"port {port} is out of range (1..65535)")
    return value


@dataclass(frozen=True)
class Settings:
    """Validated settings. `database_url` is always set (may hold a password: never log it;
    use `masked_database_url`)."""

    enable_persistence: bool = False
    database_url: str = field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}", repr=False)
    pool_size: int | None = None
    retention_days: int = 180
    aggregation_schedule: str = "0 0 * * *"
    # HTTP API: `serve` listens on http_port or DEFAULT_HTTP_PORT; `run` only when it is set.
    http_host: str = DEFAULT_HTTP_HOST
    http_port: int | None = None
    api_token: str | None = field(default=None, repr=False)
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def masked_database_url(self) -> str:
        return mask_url(self.database_url)


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


def _postgres_url(values: Mapping[str, str]) -> str:
    host = values["POSTGRES_HOST"].strip()
    if not host:
        raise ConfigError("POSTGRES_HOST", "is empty")
    port = parse_int("POSTGRES_PORT", values.get("POSTGRES_PORT", "5432"), 1, 65535)
    user = values.get("POSTGRES_USER", "").strip()
    password = values.get("POSTGRES_PASSWORD", "")
    name = values.get("POSTGRES_DB", "").strip() or "wanderer_notifier"
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    return f"postgresql://{auth}{host}:{port}/{quote(name, safe='')}"


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = None,
) -> Settings:
    """Read and validate the settings; raise `ConfigError` on the first bad value."""
    values = _raw_values(overrides, environ, dotenv)
    get: Callable[[str], str | None] = values.get

    if get("DATABASE_URL"):
        url = _database_url("DATABASE_URL", values["DATABASE_URL"])
    elif get("POSTGRES_HOST"):
        url = _postgres_url(values)
    else:
        url = f"sqlite:///{DEFAULT_SQLITE_PATH}"

    pool_size = None
    if get("POSTGRES_POOL_SIZE"):
        pool_size = parse_int("POSTGRES_POOL_SIZE", values["POSTGRES_POOL_SIZE"], 0, 1000)
        if pool_size < MIN_POOL_SIZE:
            raise ConfigError(
                "POSTGRES_POOL_SIZE",
                f"{pool_size} is too small: at least {MIN_POOL_SIZE} (the writer keeps one "
                "connection and the scheduled jobs need another)",
            )

    http_host = (get("PERSISTENCE_HTTP_HOST") or DEFAULT_HTTP_HOST).strip()
    if not http_host or any(c.isspace() for c in http_host):
        raise ConfigError("PERSISTENCE_HTTP_HOST", f"{http_host!r} is not a host name or address")
    raw_port = get("PERSISTENCE_HTTP_PORT")
    http_port = parse_int("PERSISTENCE_HTTP_PORT", raw_port, 1, 65535) if raw_port else None
    api_token = get("PERSISTENCE_API_TOKEN") or None
    if api_token is not None and (len(api_token.strip()) < 16 or api_token != api_token.strip()):
        raise ConfigError(
            "PERSISTENCE_API_TOKEN", "must be at least 16 characters, without surrounding spaces"
        )

    return Settings(
        enable_persistence=parse_bool("ENABLE_PERSISTENCE", get("ENABLE_PERSISTENCE") or "false"),
        database_url=url,
        pool_size=pool_size,
        retention_days=parse_int(
            "PERSISTENCE_RETENTION_DAYS", get("PERSISTENCE_RETENTION_DAYS") or "180", 1, 100_000
        ),
        aggregation_schedule=parse_cron(
            "PERSISTENCE_AGGREGATION_SCHEDULE",
            get("PERSISTENCE_AGGREGATION_SCHEDULE") or "0 0 * * *",
        ),
        http_host=http_host,
        http_port=http_port,
        api_token=api_token,
        extra=values,
    )
