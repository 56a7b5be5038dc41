"""`/api/v1/charts/{name}.png`: the PNG charts (extra `charts`; 501 without it)."""

from __future__ import annotations

import falcon

from ... import charts
from ..context import ApiContext
from ..errors import Problem
from ..spec import SPEC, ChartQuery
from .common import etag_matches


class ChartResource:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=ChartQuery, tags=["charts"])
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """One chart as `image/png` (names: see docs/charts.md), with an ETag."""
        q: ChartQuery = req.context.query
        request = charts.ChartRequest(
            name, q.character, q.period, q.start, q.from_, q.to, q.width, q.height, q.limit
        ).checked()
        if not charts.available():
            raise Problem(501, charts.CHARTS_EXTRA_HINT)
        chart = charts.load_chart(self.ctx.db, request)
        tag = chart.etag()
        resp.set_header("ETag", tag)
        if etag_matches(req.get_header("If-None-Match"), tag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "image/png"
        resp.data = charts.render_png(chart)
