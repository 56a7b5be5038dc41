"""ESI client against the local fake ESI: batching, unknown ids, error limit, 420, 429,
5xx, timeouts, ESI down."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin import __version__
from wn_persist_plugin.errors import ConfigError, SourceNotFound
from wn_persist_plugin.settings import load_settings
from wn_persist_plugin.sources.esi import (
    EsiClient,
    EsiError,
    EsiNotFound,
    EsiSettings,
    EsiUnavailable,
)
from wn_persist_plugin.sources.http import make_session, user_agent


def esi_settings(values: dict[str, str]) -> EsiSettings:
    return load_settings(environ=values, dotenv=Path("/nonexistent/.env")).esi


JITA = 30000142


def test_universe_endpoints(esi_client):
    system = esi_client.system(JITA)
    assert system["name"] == "Jita" and system["constellation_id"] == 20000020
    assert esi_client.constellation(20000020)["region_id"] == 10000002
    assert esi_client.region(10000002)["name"] == "The Forge"
    with pytest.raises(EsiNotFound):
        esi_client.system(1)


def test_every_request_carries_our_user_agent(fake_server, sleeps):
    """ESI asks clients to identify themselves: our User-Agent (with the contact) on every
    request, retries and POSTs included, never python-requests'."""
    fake_server.script(r"^/universe/regions/", [(503, {})])
    client = EsiClient(
        EsiSettings(base_url=fake_server.url), contact="ops@example.org", sleep=sleeps
    )
    assert client.region(10000002)["name"] == "The Forge"
    assert client.names([JITA]).names[JITA] == ("Jita", "solar_system")
    expected = user_agent("ops@example.org")
    assert expected.startswith(f"wn-persist/{__version__} (") and "ops@example.org" in expected
    assert fake_server.user_agents() == [expected] * 3
    assert [(m, p) for m, p, _ in fake_server.received] == [
        ("GET", "/universe/regions/10000002/"),
        ("GET", "/universe/regions/10000002/"),
        ("POST", "/universe/names/"),
    ]
    assert all(h["accept"] == "application/json" for _, _, h in fake_server.received)


def test_default_client_and_handed_in_session(esi_client, fake_server):
    esi_client.system(JITA)
    EsiClient(EsiSettings(base_url=fake_server.url), session=make_session("s@example.org")).system(
        JITA
    )
    assert fake_server.user_agents() == [user_agent(None), user_agent("s@example.org")]


def test_not_found_is_a_source_not_found(esi_client):
    with pytest.raises(SourceNotFound, match=r"^ESI: GET /universe/systems/1/: HTTP 404"):
        esi_client.system(1)


def test_names_are_batched_by_1000(esi_client, fake_server, fake_data):
    ids = sorted(fake_data.entities)[:2500]
    result = esi_client.names(ids + ids[:10])  # duplicates asked once
    posts = fake_server.asked("/universe/names/")
    assert [len(p[2]) for p in posts] == [1000, 1000, 500]
    assert len(result.names) == 2500 and not result.unknown
    some = ids[0]
    assert result.names[some] == (
        f"{fake_data.entities[some].title()} {some}",
        fake_data.entities[some],
    )


def test_unknown_ids_are_isolated_and_reported(esi_client, fake_server, fake_data):
    known = sorted(fake_data.entities)[:40]
    result = esi_client.names(known + [1, 2])
    assert result.unknown == {1, 2}
    assert set(result.names) == set(known)
    assert esi_client.names([JITA]).names[JITA] == ("Jita", "solar_system")


def test_420_waits_for_the_error_limit_reset(esi_client, fake_server, sleeps):
    fake_server.script(
        r"^/universe/systems/",
        [(420, {"X-ESI-Error-Limit-Reset": "7", "X-ESI-Error-Limit-Remain": "0"})],
    )
    assert esi_client.system(JITA)["name"] == "Jita"
    assert sleeps.waits == [7.0]
    assert len(fake_server.asked("/universe/systems/")) == 2


def test_429_honours_retry_after(esi_client, fake_server, sleeps):
    fake_server.script(r"^/universe/regions/", [(429, {"Retry-After": "3"})])
    assert esi_client.region(10000002)["name"] == "The Forge"
    assert sleeps.waits == [3.0]


def test_5xx_is_retried_with_backoff(esi_client, fake_server, sleeps):
    fake_server.script(r"^/universe/regions/", [(502, {}), (503, {})])
    assert esi_client.region(10000002)["name"] == "The Forge"
    assert sleeps.waits == [1.0, 2.0]


def test_esi_down_raises_unavailable_after_retries(esi_client, fake_server):
    fake_server.down = True
    with pytest.raises(EsiUnavailable):
        esi_client.names([JITA])
    assert len(fake_server.asked("/universe/names/")) == 4  # 1 + max_retries


def test_low_error_limit_waits_before_the_next_request(fake_server, sleeps):
    fake_server.error_remain = 5  # ESI says: 5 errors left in this window
    fake_server.error_reset = 30
    client = EsiClient(EsiSettings(base_url=fake_server.url, max_wait=60), sleep=sleeps)
    client.system(JITA)
    assert sleeps.waits == []
    client.system(JITA)
    assert len(sleeps.waits) == 1 and 25 < sleeps.waits[0] <= 30


def test_a_wait_longer_than_max_wait_gives_up(fake_server, sleeps):
    client = EsiClient(EsiSettings(base_url=fake_server.url, max_wait=10), sleep=sleeps)
    fake_server.script(r"^/universe/systems/", [(429, {"Retry-After": "3600"})])
    with pytest.raises(EsiUnavailable, match="3600"):
        client.system(JITA)
    assert sleeps.waits == []


def test_other_client_errors_are_not_retried(esi_client, fake_server):
    fake_server.script(r"^/universe/systems/", [(400, {})])
    with pytest.raises(EsiError) as info:
        esi_client.system(JITA)
    assert info.value.status == 400
    assert str(info.value) == "ESI: GET /universe/systems/30000142/: HTTP 400 (scripted 400)"
    assert len(fake_server.asked("/universe/systems/")) == 1


def test_timeouts_are_retried_then_unavailable(sleeps):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept() -> None:  # accept and never answer
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = EsiClient(EsiSettings(base_url=url, timeout=0.3, max_retries=2), sleep=sleeps)
        with pytest.raises(EsiUnavailable, match=r"read timed out after 0\.3 s \(after 3 tries\)"):
            client.system(JITA)
        assert sleeps.waits == [1.0, 2.0]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_connection_refused_is_unavailable(sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = EsiClient(
        EsiSettings(base_url=f"http://127.0.0.1:{port}", max_retries=1), sleep=sleeps
    )
    with pytest.raises(
        EsiUnavailable, match="^ESI: GET /universe/regions/10000002/: connection refused"
    ):
        client.region(10000002)


def test_settings_from_environment():
    settings = esi_settings({"ESI_BASE_URL": "http://127.0.0.1:9/latest/", "ESI_TIMEOUT": "5"})
    assert settings.base_url == "http://127.0.0.1:9" and settings.timeout == 5  # no /latest
    with pytest.raises(ConfigError, match="^ESI_BASE_URL"):
        esi_settings({"ESI_BASE_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="^ESI_MAX_RETRIES"):
        esi_settings({"ESI_MAX_RETRIES": "many"})
