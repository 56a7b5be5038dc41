"""Each network failure of a session with urllib3 retries is one short line naming the
host, the cause and the next retry, once a minute for an unchanged failure; urllib3's own
long "Retrying (Retry(total=...))" warnings do not appear. Real sockets, no mocks."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import requests

from wn_persist_plugin.sources.http import Backoff, make_session

FAST = Backoff(first=0.01, cap=0.02)


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def failing_get(url: str, caplog: pytest.LogCaptureFixture, times: int = 1) -> list[str]:
    session = make_session(timeout=2.0, retries=3, backoff=FAST)
    with caplog.at_level(logging.DEBUG):
        for _ in range(times):
            with pytest.raises(requests.ConnectionError):
                session.get(url)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def assert_short(lines: list[str]) -> None:
    for line in lines:
        assert len(line) < 200, line
        assert "HTTPConnectionPool(" not in line and "Max retries exceeded" not in line, line
        assert "Retrying (" not in line, line


def test_dns_failure_is_one_short_line_per_window(caplog):
    host = "wn-persist-test.invalid"
    lines = failing_get(f"http://{host}/x", caplog, times=2)  # 2 requests, 6 retries
    assert_short(lines)
    assert lines == [f"{host}: DNS lookup failed; retry 1 of 3 in 0.0 s"]


def test_refused_connection_is_one_short_line_per_window(caplog):
    port = refused_port()
    lines = failing_get(f"http://127.0.0.1:{port}/x", caplog, times=2)
    assert_short(lines)
    assert lines == [f"127.0.0.1:{port}: connection refused; retry 1 of 3 in 0.0 s"]


def test_a_changed_cause_is_said_at_once(caplog):
    """The throttle is per host and cause: a new cause is logged at once, then the repeated
    one is held back until a minute has passed."""
    port = refused_port()
    lines = failing_get(f"http://127.0.0.1:{port}/x", caplog)
    assert len(lines) == 1  # then retries 2 and 3 are held back
    with socket.socket() as listener:  # now something answers and closes at once
        listener.bind(("127.0.0.1", port))
        listener.listen()
        session = make_session(timeout=2.0, retries=1, backoff=FAST)
        caplog.clear()
        with caplog.at_level(logging.WARNING):

            def serve() -> None:
                for _ in range(2):
                    conn, _ = listener.accept()
                    conn.close()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            with pytest.raises(requests.ConnectionError):
                session.get(f"http://127.0.0.1:{port}/x")
            thread.join(5)
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert_short(lines)
    assert len(lines) == 1
    # the held-back refusals of this host are counted in the next line
    assert lines[0].startswith(
        f"127.0.0.1:{port}: connection closed without an answer; retry 1 of 1 in 0.0 s ("
    )
    assert lines[0].endswith("(2 more failures since the last line)")
