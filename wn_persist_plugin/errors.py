"""Every exception wn-persist raises, in one place.

    WnPersistError
    ├── ConfigError            a setting has a bad value (one line naming the variable)
    ├── MalformedKillmail      input that is not a killmail we can store
    ├── MigrationTargetError   a schema version that no migration has
    ├── JobBusy                another process or thread runs the job
    ├── UniverseImportError    static data files missing or unreadable
    ├── ExtraMissing           a feature needs an optional extra that is not installed
    ├── QueryError             a question about the history that has no answer
    │   ├── UnknownPeriod      not daily, weekly or monthly
    │   ├── UnknownCharacter   no tracked character or statistics by that id or name
    │   ├── UnknownKillmail    no stored involvement of that killmail
    │   └── InvalidParameter   a query parameter out of its domain (names the parameter)
    └── SourceError            an outside service gave no usable answer (`status`: HTTP)
        ├── SourceNotFound     404: what was asked for is not there (a history day, ...)
        ├── SourceUnavailable  down, too slow, or asks us to wait too long: try later
        │   ├── MapUnavailable the Wanderer map API, this time
        │   └── StaticDataUnavailable  the SDE download (also a UniverseImportError)
        ├── EsiError           ESI refused in a way retrying will not fix
        │   ├── EsiNotFound    404: the id (or id/hash pair) does not exist (a SourceNotFound)
        │   └── EsiUnavailable ESI is down or asks us to wait too long (a SourceUnavailable)
        └── DiscordError       a Discord webhook refused the post (never names the webhook)
            └── DiscordUnavailable  down, or rate-limited longer than we wait (a SourceUnavailable)

Source messages are one line: the service, what was asked, and the cause (DNS lookup
failed, connection refused, timed out, TLS error, HTTP status, ...); never a URL password
or an API key.

Messages never name a command-line flag: the CLI translates library errors into exit codes
and words of its own.
"""

from __future__ import annotations


class WnPersistError(Exception):
    """Base class of every error wn-persist raises on purpose."""


class ConfigError(WnPersistError, ValueError):
    """A setting has a bad value; `str()` is one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class MalformedKillmail(WnPersistError, ValueError):
    """The input is not a killmail we can store; `killmail_id` is set when known."""

    def __init__(self, reason: str, killmail_id: int | None = None) -> None:
        self.reason = reason
        self.killmail_id = killmail_id
        where = f"killmail {killmail_id}" if killmail_id is not None else "killmail (no id)"
        super().__init__(f"{where}: {reason}")


class MigrationTargetError(WnPersistError, ValueError):
    """A requested schema version names no known migration."""


class JobBusy(WnPersistError, RuntimeError):
    """Another process (or thread) is running the job."""

    def __init__(self, job: str) -> None:
        self.job = job
        super().__init__(f"another process is running the {job} job; try again later")


class UniverseImportError(WnPersistError):
    """The SDE files are missing or unreadable; the message names the file."""


class ExtraMissing(WnPersistError, ImportError):
    """A feature needs an optional extra (`pip install 'wn-persist-plugin[EXTRA]'`)."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(f"{feature} need the extra: pip install 'wn-persist-plugin[{extra}]'")


class QueryError(WnPersistError):
    """A question about the stored history that has no answer."""


class UnknownPeriod(QueryError, ValueError):
    """A period type other than daily, weekly or monthly."""

    def __init__(self, period: str, choices: tuple[str, ...]) -> None:
        self.period = period
        super().__init__(f"unknown period {period!r} (use {', '.join(choices)})")


class UnknownCharacter(QueryError, LookupError):
    """No tracked character or statistics for this id or name."""

    def __init__(self, text: str, detail: str = "no tracked character or statistics") -> None:
        self.text = text
        super().__init__(f"unknown character {text!r}: {detail}")


class UnknownKillmail(QueryError, LookupError):
    """No stored involvement of this killmail."""

    def __init__(self, killmail_id: int) -> None:
        self.killmail_id = killmail_id
        super().__init__(f"unknown killmail {killmail_id}: not stored")


class InvalidParameter(QueryError, ValueError):
    """A query parameter is outside its domain; `parameter` names it."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


class SourceError(WnPersistError):
    """An outside service (ESI, zKillboard, the map API, static data) gave no usable answer.
    `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class SourceNotFound(SourceError):
    """404: the service has nothing at that address (an unknown id, a day not published)."""


class SourceUnavailable(SourceError):
    """The service is down, too slow, or asks us to wait longer than we are willing to."""


class MapUnavailable(SourceUnavailable):
    """The map API gave no usable answer this time (the reason is safe to log)."""


class StaticDataUnavailable(SourceUnavailable, UniverseImportError):
    """The static data (SDE) download failed; no file of it was left half-written."""


class EsiError(SourceError):
    """ESI answered with an error that retrying will not fix."""


class EsiNotFound(EsiError, SourceNotFound):
    """404: the id (or id/hash pair) does not exist."""


class EsiUnavailable(EsiError, SourceUnavailable):
    """ESI is down, too slow, or asks us to wait longer than we are willing to."""


class DiscordError(SourceError):
    """A Discord webhook refused the post in a way retrying will not fix (bad webhook,
    bad payload); the message never contains the webhook URL."""


class DiscordUnavailable(DiscordError, SourceUnavailable):
    """Discord is down, too slow, or rate-limits us for longer than we wait."""
