"""`/livez`, `/readyz`, `/metrics` and `/openapi.json`."""

from __future__ import annotations

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..context import ApiContext
from ..readiness import check_readiness
from ..spec import SPEC
from .common import send_json

TAG = "operations"


class Live:
    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 while the process runs."""
        send_json(req, resp, {"status": "ok"})


class Ready:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 when the database answers and the schema is current, else 503; lists each
        check."""
        result = check_readiness(self.ctx.db, self.ctx.feed_status)
        resp.status = falcon.HTTP_200 if result.ready else falcon.HTTP_503
        send_json(req, resp, {"ready": result.ready, "checks": result.checks})


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Prometheus text format."""
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


class OpenApi:
    def __init__(self, document: dict) -> None:
        self.document = document

    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """This document (OpenAPI 3.1)."""
        send_json(req, resp, self.document)
