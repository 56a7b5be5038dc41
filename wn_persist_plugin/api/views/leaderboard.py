"""`/api/v1/leaderboard`: ranked characters for one period."""

from __future__ import annotations

import falcon

from ...statistics import history
from ..context import ApiContext
from ..spec import SPEC, LeaderboardQuery
from .common import send_json


class LeaderboardResource:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=LeaderboardQuery, tags=["statistics"])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Characters ranked by one figure in the period starting on `start`."""
        q: LeaderboardQuery = req.context.query
        board = history.leaderboard(self.ctx.db, q.period, q.start, q.by, q.limit)
        send_json(req, resp, board, etag=True)
