"""The app factory: settings, database and metrics registry in, a falcon WSGI app out."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import falcon
from peewee import Database
from prometheus_client import CollectorRegistry

from ..settings import Settings
from . import errors
from .context import ApiContext, FeedStatus
from .errors import Problem
from .metrics import HttpMetrics
from .spec import SPEC
from .views import (
    characters,
    charts,
    dashboard,
    export,
    group,
    health,
    killmails,
    leaderboard,
)

log = logging.getLogger(__name__)
OPEN_ROUTES = frozenset({"/livez", "/readyz", "/"})
"""Routes that answer without the API token (also everything under `/static/`)."""


def is_open(path: str) -> bool:
    """Whether `path` answers without the API token: health, the dashboard page and its
    static files."""
    return path in OPEN_ROUTES or path.startswith(dashboard.STATIC_PREFIX)


class TokenAuth:
    """With a token set, every route but `OPEN_ROUTES` needs `Authorization: Bearer`."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._expected is None or is_open(req.path):
            return
        given = (req.get_header("Authorization") or "").encode()
        if not hmac.compare_digest(given, self._expected):
            problem = Problem(401, "a valid bearer token is required")
            problem.headers["WWW-Authenticate"] = 'Bearer realm="wn-persist"'
            raise problem


class DatabaseConnection:
    """Each worker thread keeps its connection open between requests (a pooled
    PostgreSQL connection goes back to the pool after each)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pooled = hasattr(db, "_in_use")

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        if req.path not in ("/livez", "/metrics", "/readyz", "/openapi.json") and not is_open(
            req.path
        ):
            self.db.connect(reuse_if_open=True)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool
    ) -> None:
        if self.pooled and resp.stream is None and not self.db.is_closed():
            self.db.close()


def create_app(
    settings: Settings,
    db: Database,
    registry: CollectorRegistry,
    *,
    feed_status: FeedStatus | None = None,
) -> falcon.App:
    """The API over `db`; request metrics go to `registry` (which `/metrics` serves)."""
    ctx = ApiContext(settings, db, feed_status)
    middleware: list[Any] = [
        HttpMetrics(registry),
        TokenAuth(settings.http.api_token),
        DatabaseConnection(db),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app, db)
    app.add_route("/livez", health.Live())
    app.add_route("/readyz", health.Ready(ctx))
    app.add_route("/metrics", health.Metrics(registry))
    base = "/api/v1"
    app.add_route(f"{base}/characters", characters.CharacterList(ctx))
    app.add_route(f"{base}/characters/{{character_id}}", characters.CharacterProfile(ctx))
    app.add_route(f"{base}/characters/{{character_id}}/stats", characters.CharacterStats(ctx))
    app.add_route(
        f"{base}/characters/{{character_id}}/killmails", characters.CharacterKillmails(ctx)
    )
    app.add_route(f"{base}/characters/{{character_id}}/activity", characters.CharacterActivity(ctx))
    app.add_route(f"{base}/killmails/{{killmail_id}}", killmails.KillmailResource(ctx))
    app.add_route(f"{base}/leaderboard", leaderboard.LeaderboardResource(ctx))
    app.add_route(f"{base}/group/stats", group.GroupStatsResource(ctx))
    app.add_route(f"{base}/export", export.ExportResource(ctx))
    app.add_route(f"{base}/charts/{{name}}.png", charts.ChartResource(ctx))
    dashboard.add_routes(app)
    document = openapi_document(app)
    app.add_route("/openapi.json", health.OpenApi(document))
    return app


def openapi_document(app: falcon.App) -> dict[str, Any]:
    """The OpenAPI 3.1 document spectree writes from the typed route definitions."""
    SPEC.register(app)
    document = dict(SPEC.spec)
    # /openapi.json itself is added after this snapshot; list it too.
    document.setdefault("paths", {})
    document["paths"] = {
        path: item
        for path, item in document["paths"].items()
        if not path.startswith("/apidoc") and path not in dashboard.ROUTES
    }
    if "/openapi.json" not in document["paths"]:
        document["paths"]["/openapi.json"] = {
            "get": {
                "summary": "This document (OpenAPI 3.1).",
                "tags": ["operations"],
                "responses": {"200": {"description": "OK"}},
            }  # fmt: skip
        }
    return document
