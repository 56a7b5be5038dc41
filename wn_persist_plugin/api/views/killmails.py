"""`/api/v1/killmails/{killmail_id}`: one stored mail."""

from __future__ import annotations

import falcon

from ...statistics import history
from ..context import ApiContext
from ..spec import SPEC
from .common import path_id, send_json


class KillmailResource:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(tags=["killmails"])
    def on_get(self, req: falcon.Request, resp: falcon.Response, killmail_id: int) -> None:
        """The stored mail (victim, tracked attackers, zkb) and the tracked characters it
        credits."""
        kid = path_id(str(killmail_id), "killmail_id")
        send_json(req, resp, history.killmail_detail(self.ctx.db, kid))
