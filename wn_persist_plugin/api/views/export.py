"""`/api/v1/export`: one row per involvement, streamed."""

from __future__ import annotations

import datetime as dt

import falcon

from ...statistics import export
from ..context import ApiContext
from ..spec import SPEC, ExportQuery


class ExportResource:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=ExportQuery, tags=["export"])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every involvement (in from..to, of `character`) as CSV, a JSON array or NDJSON."""
        q: ExportQuery = req.context.query
        export.check_range(q.from_, q.to)
        rows = export.export_rows(self.ctx.db, q.from_, q.to, q.character)
        resp.content_type = export.MEDIA_TYPES[q.format]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        resp.downloadable_as = f"wn-persist-{stamp}.{q.format}"
        resp.stream = (piece.encode() for piece in export.render(rows, q.format))
