"""`/api/v1/characters`: the tracked list, a profile, stored statistics periods, killmail
pages and weekday x hour activity."""

from __future__ import annotations

from urllib.parse import urlencode

import falcon

from ...statistics import history
from ..context import ApiContext
from ..spec import SPEC, KillmailPageQuery, PeriodRangeQuery, RangeQuery
from .common import path_id, send_json

TAG = "characters"


class CharacterList:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Tracked characters with first and last involvement and counts."""
        send_json(req, resp, {"items": history.list_characters(self.ctx.db)})


class CharacterProfile:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response, character_id: int) -> None:
        """Profile and all-time totals."""
        cid = path_id(str(character_id), "character_id")
        send_json(req, resp, history.character_profile(self.ctx.db, cid))


class CharacterStats:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=PeriodRangeQuery, tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response, character_id: int) -> None:
        """One object per stored period overlapping from..to."""
        cid = path_id(str(character_id), "character_id")
        q: PeriodRangeQuery = req.context.query
        history.check_range(q.from_, q.to)
        history.require_character(self.ctx.db, cid)
        items = history.character_stats(self.ctx.db, cid, q.period, q.from_, q.to)
        send_json(req, resp, {"period": q.period, "items": items}, etag=True)


class CharacterKillmails:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=KillmailPageQuery, tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response, character_id: int) -> None:
        """Involvements newest first, keyset-paginated (`next` cursor and a Link header)."""
        cid = path_id(str(character_id), "character_id")
        q: KillmailPageQuery = req.context.query
        after = history.PageKey.decode(q.cursor) if q.cursor else None
        history.check_range(q.from_, q.to)
        history.require_character(self.ctx.db, cid)
        page = history.killmail_page(
            self.ctx.db, cid, role=q.role, start=q.from_, end=q.to, limit=q.limit, after=after
        )
        cursor = page.next.encode() if page.next else None
        if cursor:
            params = {k: v for k, v in req.params.items() if k != "cursor"}
            params["cursor"] = cursor
            resp.set_header("Link", f'<{req.path}?{urlencode(params, doseq=True)}>; rel="next"')
        send_json(req, resp, {"items": page.items, "next": cursor})


class CharacterActivity:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @SPEC.validate(query=RangeQuery, tags=[TAG])
    def on_get(self, req: falcon.Request, resp: falcon.Response, character_id: int) -> None:
        """Involvements per UTC weekday (Monday first) x hour."""
        cid = path_id(str(character_id), "character_id")
        q: RangeQuery = req.context.query
        history.check_range(q.from_, q.to)
        history.require_character(self.ctx.db, cid)
        grid = history.activity(self.ctx.db, cid, q.from_, q.to)
        days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        send_json(req, resp, {"weekdays": days, "hours": list(range(24)), "counts": grid})
