"""Bad input (400 naming the parameter), unknown ids (404), the token (401) and an
unreachable database (503), on both databases."""

from __future__ import annotations

import logging

import pytest
from api_support import (
    TOKEN,
    seeded_database,  # noqa: F401 - the `seeded` fixture
    settings_for,
)
from falcon import testing
from prometheus_client import CollectorRegistry

from wn_persist_plugin.api.app import create_app
from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.statistics.history import PageKey


def _some_character(s) -> int:
    return next(iter(sorted(s.tracked)))


BAD = [
    ("/api/v1/characters/abc", {}, "character_id"),
    ("/api/v1/characters/12x/stats", {}, "character_id"),
    ("/api/v1/killmails/1e5", {}, "killmail_id"),
    ("/api/v1/characters/{cid}/stats", {"period": "yearly"}, "period"),
    ("/api/v1/characters/{cid}/stats", {"from": "2026-13-01"}, "from"),
    ("/api/v1/characters/{cid}/stats", {"from": "20260101"}, "from"),
    ("/api/v1/characters/{cid}/stats", {"to": "yesterday"}, "to"),
    ("/api/v1/characters/{cid}/stats", {"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ("/api/v1/characters/{cid}/killmails", {"limit": "0"}, "limit"),
    ("/api/v1/characters/{cid}/killmails", {"limit": "501"}, "limit"),
    ("/api/v1/characters/{cid}/killmails", {"limit": "ten"}, "limit"),
    ("/api/v1/characters/{cid}/killmails", {"role": "pilot"}, "role"),
    ("/api/v1/characters/{cid}/killmails", {"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ("/api/v1/characters/{cid}/killmails", {"cursor": "!!!"}, "cursor"),
    ("/api/v1/characters/{cid}/activity", {"from": "2026-02-30"}, "from"),
    ("/api/v1/leaderboard", {"by": "karma"}, "by"),
    ("/api/v1/leaderboard", {"period": "hourly"}, "period"),
    ("/api/v1/leaderboard", {"period": "monthly", "start": "2026-01-02"}, "start"),
    ("/api/v1/leaderboard", {"limit": "-1"}, "limit"),
    ("/api/v1/group/stats", {"from": "2026-02-01", "to": "2026-01-31"}, "from"),
    ("/api/v1/export", {"format": "xml"}, "format"),
    ("/api/v1/export", {"character": "me"}, "character"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD)
def test_bad_input_is_400_naming_the_parameter(seeded, path, params, name):
    resp = seeded.client.simulate_get(
        path.format(cid=_some_character(seeded)), params=params or None
    )
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json
    assert body["status"] == 400 and body["invalid_params"][0]["name"] == name
    assert body["detail"].startswith(f"{name}:")
    assert "Traceback" not in resp.text


def test_unknown_ids_are_404(seeded):
    missing = 1
    for path in (
        f"/api/v1/characters/{missing}",
        f"/api/v1/characters/{missing}/stats",
        f"/api/v1/characters/{missing}/killmails",
        f"/api/v1/characters/{missing}/activity",
        "/api/v1/killmails/1",
        "/api/v1/nothing-here",
    ):
        resp = seeded.client.simulate_get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"] == "application/problem+json"


def test_a_valid_cursor_of_another_shape_still_works(seeded):
    """A cursor is checked strictly, but any well-formed one is a position."""
    import datetime as dt

    key = PageKey(dt.datetime(2030, 1, 1, tzinfo=dt.UTC), 1, "victim").encode()
    cid = _some_character(seeded)
    resp = seeded.client.simulate_get(f"/api/v1/characters/{cid}/killmails", params={"cursor": key})
    assert resp.status_code == 200


def test_token_guards_everything_but_health(seeded, caplog):
    caplog.set_level(logging.DEBUG)
    settings = settings_for(seeded.url, PERSISTENCE_API_TOKEN=TOKEN)
    db = open_database(seeded.url, bind=False)
    client = testing.TestClient(create_app(settings, db, CollectorRegistry()))
    for path in ("/api/v1/characters", "/metrics", "/openapi.json", "/api/v1/export"):
        resp = client.simulate_get(path)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"].startswith("Bearer")
        wrong = client.simulate_get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.simulate_get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200, path
    assert client.simulate_get("/livez").status_code == 200
    assert client.simulate_get("/readyz").status_code == 200
    assert TOKEN not in caplog.text and TOKEN not in repr(settings)
    db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_database_gone_is_503(backend, tmp_path, caplog, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    else:
        request.getfixturevalue("postgres_server")  # skips when PostgreSQL is down
        url = "postgresql://postgres:pw-that-must-not-leak@127.0.0.1:1/gone"
    db = open_database(url, bind=False)
    client = testing.TestClient(create_app(settings_for(url), db, make_registry(db)))
    for path in ("/api/v1/characters", "/api/v1/characters/5/stats", "/api/v1/group/stats"):
        resp = client.simulate_get(path)
        assert resp.status_code == 503, (path, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in resp.text and "pw-that" not in resp.text
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["database"]["ok"] is False
    assert client.simulate_get("/livez").status_code == 200
    metrics = client.simulate_get("/metrics")
    assert metrics.status_code == 200 and "wn_persist_database_up 0.0" in metrics.text
    assert "pw-that-must-not-leak" not in caplog.text
