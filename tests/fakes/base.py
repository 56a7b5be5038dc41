"""A real HTTP server on 127.0.0.1 in a background thread, with scripted faults and a
request log (server-side timestamps)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Request:
    at: float
    """time.monotonic() when the server started handling it."""
    path: str
    status: int
    headers: dict[str, str]


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    content_type: str,
    raw: bytes,
    extra: dict[str, str],
) -> None:
    """Answer one request (a client gone meanwhile is no error)."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass


class LocalServer:
    """A real HTTP server on 127.0.0.1 (a free port) in a background thread, used as a
    context manager; subclasses answer the methods in `METHODS` in `_handle(handler)`."""

    METHODS: tuple[str, ...] = ("GET",)

    def __init__(self) -> None:
        server = self

        def answer(handler: BaseHTTPRequestHandler) -> None:
            server._handle(handler)

        def quiet(handler: BaseHTTPRequestHandler, *args: Any) -> None:
            pass

        handlers: dict[str, Any] = {"protocol_version": "HTTP/1.1", "log_message": quiet}
        handlers.update({f"do_{method}": answer for method in self.METHODS})
        handler_class = type("Handler", (BaseHTTPRequestHandler,), handlers)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError


class FakeServer(LocalServer):
    """Subclasses implement `respond(path, headers) -> (status, body, extra_headers)`.

    Faults: `fail(path, *faults)` queues faults served (one per request) before the normal
    answer: "500" / "503" / any status, "garbage" (200 with a body that is not JSON),
    "429:N" / "503:N" / any status with `Retry-After: N`, "timeout:S" (answer only after S
    seconds), "close" (drop the connection without an answer), "html" (200 with an HTML
    error page), "redirect" (302 back to the same path). Path "*" matches every request.
    `fail_for(path, fault, seconds)` serves one fault to every request for `path` during
    `seconds` from the first such request on. Every request is recorded with its headers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.windows: dict[str, tuple[str, float, float | None]] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.root

    def fail(self, path: str, *faults: str) -> None:
        with self.lock:
            self.faults[path].extend(faults)

    def fail_for(self, path: str, fault: str, seconds: float) -> None:
        """Answer every request for `path` with `fault` during `seconds` from the first."""
        with self.lock:
            self.windows[path] = (fault, seconds, None)

    def _next_fault(self, path: str) -> str | None:
        with self.lock:
            window = self.windows.get(path)
            if window is not None:
                fault, seconds, until = window
                if until is None:
                    until = time.monotonic() + seconds
                    self.windows[path] = (fault, seconds, until)
                if time.monotonic() < until:
                    return fault
                del self.windows[path]
            for key in (path, "*"):
                if self.faults.get(key):
                    return self.faults[key].popleft()
        return None

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def paths(self, status: int | None = None) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests if status is None or r.status == status]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        at = time.monotonic()
        path = handler.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        fault = self._next_fault(path)
        extra: dict[str, str] = {}
        content_type = "application/json"
        if fault is None:
            status, body, extra = self.respond(path, headers)
            raw = json.dumps(body).encode() if body is not None else b""
        elif fault == "garbage":
            status, raw = 200, b'{"killmail_id": 12, "esi": {trunc'
        elif fault == "html":
            status, content_type = 200, "text/html; charset=utf-8"
            raw = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
        elif fault == "redirect":
            status, raw = 302, b""
            extra = {"Location": handler.path}
        elif fault.startswith("429"):
            status, raw = 429, b"rate limited"
            extra = {"Retry-After": fault.split(":", 1)[1]} if ":" in fault else {}
        elif fault.startswith("timeout"):
            time.sleep(float(fault.split(":", 1)[1]))
            status, body, extra = self.respond(path, headers)
            raw = json.dumps(body).encode() if body is not None else b""
        elif fault == "close":
            with self.lock:
                self.requests.append(Request(at, path, 0, headers))
            handler.close_connection = True
            return
        else:
            code, _, retry_after = fault.partition(":")
            status, raw = int(code), b"server error"
            extra = {"Retry-After": retry_after} if retry_after else {}
        with self.lock:
            self.requests.append(Request(at, path, status, headers))
        reply(handler, status, content_type, raw, extra)
