"""Serving the app with waitress, and stopping gracefully: stop accepting, let in-flight
requests finish and their responses flush, then close."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from waitress import create_server, wasyncore  # type: ignore[import-untyped]

log = logging.getLogger(__name__)
DEFAULT_THREADS = 8
STOP_TIMEOUT = 10.0
"""Seconds `stop` waits for in-flight requests."""


class ApiServer:
    """A waitress server for a WSGI app on host:port (port 0: a free one)."""

    def __init__(self, app: Any, host: str, port: int, *, threads: int = DEFAULT_THREADS) -> None:
        # A socket map of its own: with waitress's global one, two servers in a process
        # (the tests run an open and a locked one) would poll and close each other's sockets.
        self._server: Any = create_server(
            app,
            map={},
            host=host,
            port=port,
            threads=threads,
            ident="wn-persist",
            expose_tracebacks=False,
        )
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def serve(self) -> None:
        """Serve until `stop` (blocks)."""
        log.info("API listening on http://%s:%d", self.host, self.port)
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=STOP_TIMEOUT)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name="wn-api", daemon=True)
        thread.start()
        return thread

    def _busy(self) -> bool:
        server = self._server
        if server.task_dispatcher.queue or server.task_dispatcher.active_count:
            return True
        return any(
            channel.requests or channel.total_outbufs_len
            for channel in list(server.active_channels.values())
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop accepting, wait (up to `timeout`) for in-flight requests, then close."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        server = self._server

        def stop_accepting() -> None:
            server.accepting = False
            wasyncore.dispatcher.close(server)

        server.trigger.pull_trigger(stop_accepting)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.02)

        def close_all() -> None:
            for channel in list(server.active_channels.values()):
                channel.handle_close()
            server.trigger.close()

        server.trigger.pull_trigger(close_all)
