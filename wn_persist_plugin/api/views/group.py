"""`/api/v1/group/stats`: the tracked group as one side (each mail counted once)."""

from __future__ import annotations

import falcon

from ...statistics import group
from ..context import ApiContext
from ..spec import SPEC, PeriodRangeQuery
from .common import send_json


class GroupStatsResource:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=PeriodRangeQuery, tags=["statistics"])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Per period and in total: kills, losses and ISK with every mail counted once."""
        q: PeriodRangeQuery = req.context.query
        items = group.group_stats(self.ctx.db, q.period, q.from_, q.to)
        totals = group.group_totals(self.ctx.db, q.from_, q.to)
        send_json(req, resp, {"period": q.period, "items": items, "totals": totals}, etag=True)
