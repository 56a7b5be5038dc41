"""A small plugin that records every hook call, and helpers to run the host in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wn_persist_plugin.hookspecs import hookimpl
from wn_persist_plugin.host.runner import Host, RunResult, make_plugin_manager
from wn_persist_plugin.settings import Settings, load_settings


class RecordingPlugin:
    def __init__(self, *, flush_result: bool | None = None, fail_on: set[int] = frozenset()):
        self.calls: list[tuple[str, Any]] = []
        self.flush_result = flush_result
        self.flushes = 0
        self.fail_on = fail_on
        self.lock = threading.Lock()

    @hookimpl
    def on_startup(self, config: Mapping[str, Any]) -> None:
        self.calls.append(("startup", dict(config)))

    @hookimpl
    def on_tracked_characters_updated(self, characters: Any) -> None:
        self.calls.append(("tracked", list(characters)))

    @hookimpl
    def on_kill_processed(self, killmail: Mapping[str, Any]) -> None:
        if killmail.get("killmail_id") in self.fail_on:
            raise RuntimeError("plugin bug")
        with self.lock:
            self.calls.append(("kill", killmail))

    @hookimpl
    def on_shutdown(self) -> None:
        self.calls.append(("shutdown", None))

    @hookimpl
    def flush_pending(self, timeout: float) -> bool | None:
        self.flushes += 1
        return self.flush_result

    def named(self, name: str) -> list[Any]:
        with self.lock:
            return [value for kind, value in self.calls if kind == name]

    def sequences(self) -> list[int]:
        return [k["sequence_id"] for k in self.named("kill")]


def settings_for(db_url: str, **values: Any) -> Settings:
    """Settings from `values` only (no process environment, no .env)."""
    raw = {"DATABASE_URL": db_url, **{k: str(v) for k, v in values.items()}}
    return load_settings(environ=raw, dotenv=Path("/nonexistent/.env"))


FAST = {
    "R2Z2_TIMEOUT": 0.5,
    "R2Z2_NOT_FOUND_WAIT": 0.05,
    "R2Z2_MAX_BACKOFF": 0.05,
    "MAP_TIMEOUT": 0.5,
    "HOST_FLUSH_TIMEOUT": 2,
}


class HostThread:
    """Runs a Host in a thread; `stop()` stops it and returns its RunResult."""

    def __init__(self, settings: Settings, plugins: list[object]):
        self.host = Host(settings, plugin_manager=make_plugin_manager(plugins, entry_points=False))
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.host.run()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def __enter__(self) -> HostThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self, timeout: float = 20) -> RunResult:
        self.host.stop("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "host did not stop"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
