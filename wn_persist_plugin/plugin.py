"""The pluggy plugin object registered under the `wanderer_notifier` entry point."""

from __future__ import annotations


class PersistencePlugin:
    """Keeps the killmails that involve tracked characters (hooks: see hookspecs)."""


plugin = PersistencePlugin()
