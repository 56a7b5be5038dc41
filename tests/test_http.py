"""The session factory against a local server: User-Agent, Accept, the default timeout,
urllib3 retries (503, Retry-After, a dropped connection), redirects, pacing, and the
one-line causes of transport failures."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests
from fakes.base import FakeServer

from wn_persist_plugin import __version__
from wn_persist_plugin.sources.http import (
    DEFAULT_RETRIES,
    RETRY_AFTER_CAP,
    Backoff,
    make_session,
    status_cause,
    transport_cause,
    user_agent,
)

FAST = Backoff(first=0.05, cap=0.2)


class Echo(FakeServer):
    """Answers every path with 200 and the path."""

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        return 200, {"path": path}, {}


@pytest.fixture
def echo():
    with Echo() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_user_agent_is_ours_by_assignment(echo):
    session = make_session("ops@example.org")
    assert session.get(echo.url + "/a").status_code == 200
    sent = echo.requests[-1].headers
    assert sent["user-agent"] == user_agent("ops@example.org")
    assert sent["user-agent"].startswith(f"wn-persist/{__version__} (")
    assert sent["user-agent"].endswith("; ops@example.org)")
    assert "python-requests" not in sent["user-agent"]
    assert sent["accept"] == "application/json"


def test_user_agent_without_contact_and_a_contact_that_would_break_the_header():
    assert user_agent(None) == user_agent("") == user_agent("   ")
    assert user_agent(None).startswith(f"wn-persist/{__version__} (")
    agent = user_agent("ops@example.org\r\nX-Evil: 1")
    assert "\r" not in agent and "\n" not in agent and agent.endswith("ops@example.org X-Evil: 1)")


def test_accept_can_be_left_to_requests(echo):
    make_session(accept=None).get(echo.url + "/file.bz2")
    assert echo.requests[-1].headers["accept"] == "*/*"


def test_a_503_is_retried_then_succeeds(echo):
    echo.fail("/x", "503")
    response = make_session(backoff=FAST).get(echo.url + "/x")
    assert response.status_code == 200 and response.json() == {"path": "/x"}
    assert [r.status for r in echo.requests] == [503, 200]


def test_retry_after_on_a_503_is_honoured(echo):
    echo.fail("/x", "503:1")
    assert make_session(backoff=FAST).get(echo.url + "/x").status_code == 200
    first, second = echo.requests
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 0.95


def test_a_retry_after_longer_than_the_cap_goes_back_to_the_client(echo):
    echo.fail("/x", f"503:{RETRY_AFTER_CAP + 1:.0f}")
    started = time.monotonic()
    response = make_session(backoff=FAST).get(echo.url + "/x")
    assert response.status_code == 503 and response.headers["Retry-After"] == "61"
    assert len(echo.requests) == 1 and time.monotonic() - started < 5


def test_retries_used_up_give_the_last_answer(echo):
    echo.fail("/x", *["503"] * (DEFAULT_RETRIES + 1))
    response = make_session(backoff=FAST).get(echo.url + "/x")
    assert response.status_code == 503 and status_cause(response) == "HTTP 503"
    assert len(echo.requests) == DEFAULT_RETRIES + 1


def test_a_429_is_retried_only_when_it_says_when(echo):
    echo.fail("/a", "429:1")
    echo.fail("/b", "429")
    echo.fail("/c", "404")
    session = make_session(backoff=FAST)
    assert session.get(echo.url + "/a").status_code == 200  # waited Retry-After: 1
    assert echo.requests[1].at - echo.requests[0].at >= 0.95
    assert session.get(echo.url + "/b").status_code == 429  # no Retry-After: the client's
    assert session.get(echo.url + "/c").status_code == 404
    assert [r.status for r in echo.requests] == [429, 200, 429, 404]


def test_no_retries_means_one_attempt(echo):
    echo.fail("/x", "503")
    assert make_session(retries=0).get(echo.url + "/x").status_code == 503
    assert len(echo.requests) == 1


def test_a_dropped_connection_is_retried(echo):
    echo.fail("/x", "close")
    assert make_session(backoff=FAST).get(echo.url + "/x").status_code == 200
    assert [r.status for r in echo.requests] == [0, 200]


def test_the_default_timeout_applies_without_timeout_at_the_call(echo):
    echo.fail("/slow", "timeout:2")
    session = make_session(timeout=0.3, retries=0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout) as info:
        session.get(echo.url + "/slow")  # no timeout= here
    assert time.monotonic() - started < 1.5
    assert transport_cause(info.value, 0.3) == "read timed out after 0.3 s"


def test_a_read_timeout_is_retried(echo):
    echo.fail("/slow", "timeout:1")
    session = make_session(timeout=0.3, backoff=FAST)
    assert session.get(echo.url + "/slow").status_code == 200


def test_a_timeout_at_the_call_still_wins(echo):
    echo.fail("/slow", "timeout:1")
    session = make_session(timeout=5, retries=0)
    with pytest.raises(requests.ReadTimeout):
        session.get(echo.url + "/slow", timeout=0.2)


def test_pace_runs_before_every_request_on_the_wire(echo):
    calls: list[float] = []
    echo.fail("/x", "redirect", "redirect", "503")
    session = make_session(retries=0, pace=lambda: calls.append(time.monotonic()))
    assert session.get(echo.url + "/x").status_code == 503
    assert session.get(echo.url + "/x").status_code == 200
    assert len(calls) == len(echo.requests) == 4  # two hops, the 503, the answer


def test_a_paced_session_leaves_retries_to_its_client():
    with pytest.raises(ValueError, match="NO_RETRIES"):
        make_session(pace=lambda: None)


def test_a_redirect_loop_ends(echo):
    echo.fail("/loop", *["redirect"] * 10)
    with pytest.raises(requests.TooManyRedirects) as info:
        make_session(max_redirects=2).get(echo.url + "/loop")
    assert transport_cause(info.value).startswith("too many redirects")
    assert len(echo.requests) == 3


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        (lambda echo: f"http://127.0.0.1:{_closed_port()}/", "connection refused"),
        (lambda echo: "http://wn-persist-test.invalid/", "DNS lookup failed"),
        (lambda echo: echo.url.replace("http://", "https://") + "/", "TLS error"),
    ],
    ids=["refused", "dns", "tls"],
)
def test_transport_causes_are_one_short_line(echo, url, cause):
    with pytest.raises(requests.RequestException) as info:
        make_session(retries=0, timeout=2).get(url(echo))
    text = transport_cause(info.value)
    assert text.startswith(cause), text
    assert "\n" not in text and len(text) < 120 and "HTTPConnectionPool" not in text


def test_status_cause_quotes_an_error_field_on_one_line():
    response = requests.Response()
    response.status_code = 400
    response._content = b'{"error": "Ensure all IDs\\nare valid"}'
    assert status_cause(response) == "HTTP 400 (Ensure all IDs are valid)"
    response._content = b"<html>oops</html>"
    assert status_cause(response) == "HTTP 400"


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(first=0.5, cap=3)
    assert [backoff.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3, 3]
    assert Backoff(first=1, cap=float("inf")).delay(10_000) == 2.0**32
