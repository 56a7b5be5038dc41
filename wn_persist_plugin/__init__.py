"""wn-persist: killmail history and statistics for WandererNotifier.

The public surface: the hook markers for plugins and hosts, the settings, the errors a
caller may catch, the synchronous library calls and the plugin class. Everything else is
reached through its subpackage (see docs/architecture.md).
"""

__version__ = "0.1.0"

from .errors import ConfigError, MalformedKillmail, WnPersistError  # noqa: E402
from .hookspecs import hookimpl, hookspec  # noqa: E402
from .ingest.library import (  # noqa: E402
    PersistResult,
    get_character_killmails,
    maybe_persist_killmail,
)
from .plugin import PersistencePlugin  # noqa: E402
from .settings import Settings, load_settings  # noqa: E402

__all__ = [
    "ConfigError",
    "MalformedKillmail",
    "PersistResult",
    "PersistencePlugin",
    "Settings",
    "WnPersistError",
    "__version__",
    "get_character_killmails",
    "hookimpl",
    "hookspec",
    "load_settings",
    "maybe_persist_killmail",
]
