"""`wn-persist doctor` against fakes that are up, and against services that are down."""

from __future__ import annotations

import socket

from click.testing import CliRunner
from fakes.r2z2 import FakeR2Z2
from fakes.recording import settings_for
from fakes.wanderer_map import FakeMap, map_entry
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin.cli.main import main
from wn_persist_plugin.doctor import run_checks
from wn_persist_plugin.enrichment import static_data
from wn_persist_plugin.host.feed_state import save_sequence
from wn_persist_plugin.sources.http import user_agent

KEY = "doctor-map-key-123"
CONTACT = "ops@example.invalid"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_everything_up(db, db_url, real_data_dir, fake_server):
    static_data.import_directory(db, real_data_dir / "universe")
    save_sequence(db, 90_000_010)
    with (
        FakeR2Z2([{"killmail_id": 1}], first=90_000_040) as feed,
        FakeMap("m", KEY, [map_entry(2123019188), map_entry(95465499)]) as fake_map,
    ):
        settings = settings_for(
            db_url,
            ESI_BASE_URL=fake_server.url,
            R2Z2_BASE_URL=feed.url,
            MAP_URL=fake_map.url,
            MAP_NAME="m",
            MAP_API_KEY=KEY,
            USER_AGENT_CONTACT=CONTACT,
        )
        checks = {c.name: c for c in run_checks(settings, timeout=2)}
        agents = {r.headers["user-agent"] for r in feed.requests + fake_map.requests}
    assert all(c.ok for c in checks.values()), checks
    assert "schema" in checks["database"].detail
    assert checks["map API"].detail == "token valid, 2 tracked characters"
    assert checks["R2Z2 feed"].detail == "sequence 90000040, lag 30"
    assert checks["ESI"].detail.startswith("up (23456 players online), ")
    assert "errors left" in checks["ESI"].detail
    assert "imported 0 days ago" in checks["static data"].detail
    assert agents | set(fake_server.user_agents()) == {user_agent(CONTACT)}


def test_everything_down_says_what_to_do(fresh_url, monkeypatch, tmp_path):
    with FakeMap("m", KEY, []) as fake_map:
        fake_map.public_api = False
        down = closed_port_url()
        monkeypatch.chdir(tmp_path)
        for name, value in {
            "DATABASE_URL": fresh_url,  # reachable but not migrated
            "ESI_BASE_URL": down,
            "R2Z2_BASE_URL": down,
            "MAP_URL": fake_map.url,
            "MAP_NAME": "m",
            "MAP_API_KEY": KEY,
        }.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(main, ["doctor", "--timeout", "1"])
    out = result.output
    assert result.exit_code == 1, out
    assert "✘ database" in out and "✘ database: run `wn-persist migrate`" in out
    assert "✘ map API: turn on the map's public API in its settings" in out
    assert "✘ R2Z2 feed" in out and "connection refused" in out
    assert "✘ ESI" in out and "✘ ESI: check ESI_BASE_URL" in out
    assert "✘ static data" in out
    assert "✔ settings" in out and "MAP_API_KEY = ***" in out
    assert KEY not in out


def test_a_bad_setting_is_a_failed_check(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESI_TIMEOUT", "soon")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "✘ settings  ESI_TIMEOUT: 'soon' is not a number of seconds" in result.output
