"""The host contract: hooks a WandererNotifier-style host calls on its plugins.

Project name `wanderer_notifier`. A host does:

    pm = pluggy.PluginManager("wanderer_notifier")
    pm.add_hookspecs(wn_persist_plugin.hookspecs)
    pm.load_setuptools_entrypoints("wanderer_notifier")
    pm.hook.on_startup(config={...})

Every hook is called with keyword arguments only, as pluggy requires, and returns the
list of the non-None answers of the plugins that implement it. These are everything a
host calls on a plugin; docs/hooks.md describes each (a test keeps the two in step).
Specifications have no body (pluggy never runs it), hence the `empty-body` notes for mypy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from .ingest.counters import PipelineStats

PROJECT_NAME = "wanderer_notifier"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def on_startup(config: Mapping[str, Any]) -> None:
    """Called once when the host starts, before any other hook.

    `config` maps setting names (the environment variable names, e.g.
    `ENABLE_PERSISTENCE`, `DATABASE_URL`) to values; they override the environment and
    `.env`. A plugin opens its resources here, or stays inert when it is disabled.
    A plugin may raise here (and only here) when a setting is bad; wn-persist raises
    `wn_persist_plugin.errors.ConfigError`, whose message is one line naming the variable.
    """


@hookspec
def on_tracked_characters_updated(characters: Iterable[Mapping[str, Any]]) -> None:
    """Called with the host's full current list of tracked characters whenever it changes
    (and once after startup).

    Each entry is either a Wanderer map API entry (`{"tracked": true, "character":
    {"eve_id": "2123019188", "name": ..., "corporation_id": ..., "corporation_ticker": ...,
    "alliance_id": ..., "alliance_ticker": ...}}`; ids may be strings) or a plain dict
    (`{"character_id": 2123019188, "character_name": ...}`, id int or string).
    """


@hookspec
def on_kill_processed(killmail: Mapping[str, Any]) -> None:
    """Called after the host processed one killmail, on the host's own thread.

    `killmail` is the mail as the host has it: an R2Z2 object, a RedisQ package, an ESI
    mail with `zkb` merged in, a wanderer-kills mail, or WandererNotifier's
    `{"killmail_id", "zkb", "esi_data"}` struct. Implementations must return quickly and
    never raise. A plugin may keep a reference to the mapping until it has stored it: the
    host must not modify the mapping after the call.
    """


@hookspec
def on_shutdown() -> None:
    """Called once when the host stops. Plugins flush queued work, stop their threads and
    close their resources before returning."""


@hookspec
def flush_pending(timeout: float) -> bool:  # type: ignore[empty-body]
    """Called when the host must know that everything it handed over so far is written,
    e.g. before it saves a feed position, or to wait out a plugin's full queue.

    Blocks until every mail passed to `on_kill_processed` before this call is written (or
    refused) and returns True, or returns False when that is not done within `timeout`
    seconds. A plugin with nothing pending (or inactive) returns True at once. The host
    treats the work as done only when no plugin answered False.
    """


@hookspec
def pipeline_stats() -> PipelineStats:  # type: ignore[empty-body]
    """Called whenever the host wants the plugins' counters: for its progress line, to
    pause reading while a queue is full (`queued`), and before saving a feed position
    (a plugin that `dropped` or `lost` mails keeps the position where it was).

    Returns `wn_persist_plugin.ingest.counters.PipelineStats`; cheap and safe to call
    from any thread. A plugin without a pipeline returns None (it is left out).
    """
