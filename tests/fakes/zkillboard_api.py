"""A fake of zKillboard's API (`/api/characterID/{id}/year/{Y}/month/{M}/page/{n}/`)
serving real killmails, with the contract read from zKillboard's source (commit 2baf6057,
view/api.php, classes/Util.php convertUriToParameters, MongoFilter, Feed; see
docs/zkillboard-api.md):

- the path is split on `/` and its last segment dropped (it is empty with the required
  trailing slash); `characterID` / `corporationID` / `allianceID` take a value without a
  leading zero; `page` (1..100), `year` (2007..this year), `month` (1..12) and
  `pastSeconds` (multiples of 3600, at most 7 days) need an entity filter first; `year`
  alone filters nothing and `month` alone means this year; `startTime`, `endTime`,
  `limit`, `orderDirection`, `beforeKillID`, `afterKillID` and the other retired
  modifiers are refused with zKillboard's words; a path containing `json` or `/stats/`
  is refused. A refusal is HTTP 200 `{"error": "..."}`; more than 40 of them from one
  address within 5 minutes (each one restarting the 5 minutes) answers 302 to
  `/api/blocked.json`.
- 200 mails a page, killmail id descending; the month is taken by `killmail_time` here
  (zKillboard takes it by the first killmail id of the month, which CCP hands out in
  kill order); mails younger than 300 s are left out after paging.
- each item is the ESI killmail with `zkb` merged in; `old_shape` serves the
  `{killmail_id, zkb}` items zKillboard sent before 2026-06-27.
- a query string is refused with 403; `reinforced` answers 503 with a text body; answers
  carry `Cache-Control: public, max-age=3600`.
- one request per `interval` seconds per client address: an earlier one is answered 429
  with `Retry-After` (whole seconds); `rate_limit_once(seconds)` answers the next request
  429 whatever its timing.
Every request is recorded with its path, status and headers (User-Agent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from .base import LocalServer, Request, reply

PAGE_SIZE = 200
YOUNG_SECONDS = 300
ERROR_LIMIT = 40
ERROR_WINDOW = 300.0
ENTITIES = ("characterID", "corporationID", "allianceID")
RETIRED = {
    "limit": "Due to abuse of the limit parameter to avoid caches the ability to modify "
    "limit has been revoked for all users",
    "orderDirection": "orderDirection is no longer supported - sort it yourself :)",
    "xml": "xml formatting has been deprecated and is no longer supported",
}
DISABLED = ("no-attackers", "no-items", "asc", "desc")
FLAGS = ("api", "kills", "losses", "solo", "pretty", "w-space", "lowsec", "nullsec", "highsec")


class Refused(Exception):
    """zKillboard's `dire()`: the message goes back as `{"error": ...}`."""


@dataclass(frozen=True)
class Mail:
    killmail_id: int
    time: dt.datetime
    body: dict[str, Any]
    zkb: dict[str, Any]
    characters: frozenset[int]
    corporations: frozenset[int]
    alliances: frozenset[int]


def _ids(body: Mapping[str, Any], key: str) -> frozenset[int]:
    people = [body["victim"], *body["attackers"]]
    return frozenset(int(p[key]) for p in people if p.get(key) is not None)


def mail_of(envelope: Mapping[str, Any]) -> Mail:
    """A mail as the fake serves it, from an R2Z2 envelope (`killmail_id`, `hash`, `esi`,
    `zkb`); the zkb block gets the mail's `hash` as zKillboard's has it."""
    body = dict(envelope["esi"])
    zkb = dict(envelope.get("zkb") or {})
    zkb.setdefault("hash", envelope["hash"])
    when = dt.datetime.fromisoformat(body["killmail_time"].replace("Z", "+00:00"))
    return Mail(
        int(envelope["killmail_id"]),
        when.astimezone(dt.UTC),
        body,
        zkb,
        _ids(body, "character_id"),
        _ids(body, "corporation_id"),
        _ids(body, "alliance_id"),
    )


class FakeZkillboardApi(LocalServer):
    """Serves `envelopes` (R2Z2 shape, with zkb blocks) under `/api/`. `interval` is the
    per-address rate limit in seconds (0: none); `page_size` stays 200 unless a test
    says otherwise; `now` is the fake's clock for "younger than 300 s" and `year`."""

    def __init__(
        self,
        envelopes: Iterable[Mapping[str, Any]] = (),
        *,
        interval: float = 1.0,
        page_size: int = PAGE_SIZE,
        now: Any = None,
    ) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.mails: dict[int, Mail] = {}
        self.interval = interval
        self.page_size = page_size
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.old_shape = False
        self.reinforced = False
        self._once: list[int] = []
        self._last_served: dict[str, float] = {}
        self._errors: dict[str, tuple[int, float]] = {}
        self.requests: list[Request] = []
        self.add(envelopes)

    @property
    def url(self) -> str:
        """What `ZKILLBOARD_API_URL` is set to."""
        return f"{self.root}/api"

    def add(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        with self.lock:
            for envelope in envelopes:
                mail = mail_of(envelope)
                self.mails[mail.killmail_id] = mail

    def remove(self, killmail_id: int) -> None:
        with self.lock:
            del self.mails[killmail_id]

    def rate_limit_once(self, retry_after: int) -> None:
        """Answer the next request 429 with `Retry-After: retry_after`."""
        with self.lock:
            self._once.append(retry_after)

    # -- what was asked --------------------------------------------------------------------

    def paths(self, status: int | None = None) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests if status is None or r.status == status]

    def user_agents(self) -> set[str | None]:
        with self.lock:
            return {r.headers.get("user-agent") for r in self.requests}

    def character_mails(self, character_id: int) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails.values() if character_id in m.characters]

    # -- answering -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        at = time.monotonic()
        client = handler.client_address[0]
        path, _, query = handler.path.partition("?")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        extra = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET"}
        content_type = "application/json; charset=utf-8"
        with self.lock:
            once = self._once.pop(0) if self._once else None
            last = self._last_served.get(client)
            early = self.interval > 0 and last is not None and at - last < self.interval
            if once is None and not early:
                self._last_served[client] = at
        if once is not None or early:
            wait = once if once is not None else math.ceil(self.interval - (at - last))  # type: ignore[operator]
            status, raw = 429, b"429 Too Many Requests"
            content_type = "text/plain; charset=utf-8"
            extra["Retry-After"] = str(max(1, wait))
        elif query or handler.path.endswith("?"):
            status, raw = 403, b"403 Forbidden - Do not include a query string to evade cache"
            content_type = "text/plain; charset=utf-8"
        elif self.reinforced:
            status, raw = 503, b"503 Reinforced mode, please try again later"
            content_type = "text/plain; charset=utf-8"
        else:
            try:
                body: Any = self._answer(path)
                status = 200
                extra["Cache-Control"] = "public, max-age=3600"
                stamp = time.gmtime(time.time() + 3600)
                extra["Expires"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", stamp)
            except Refused as exc:
                if self._count_error(client, at) > ERROR_LIMIT:
                    status, body = 302, None
                    extra["Location"] = "/api/blocked.json"
                else:
                    status, body = 200, {"error": str(exc)}
            raw = json.dumps(body).encode() if body is not None else b""
        with self.lock:
            self.requests.append(Request(at, handler.path, status, headers))
        reply(handler, status, content_type, raw, extra)

    def _count_error(self, client: str, at: float) -> int:
        with self.lock:
            count, since = self._errors.get(client, (0, at))
            count = count + 1 if at - since <= ERROR_WINDOW else 1
            self._errors[client] = (count, at)  # each error restarts the 5 minutes
            return count

    def _answer(self, path: str) -> list[Any]:
        if not path.startswith("/api/"):
            raise Refused(f"{path.strip('/').split('/')[0]} is an invalid parameter")
        if "/stats/" in path:
            raise Refused(
                "This is not the stats endpoint, refer to the documentation and build your URL "
                "properly."
            )
        if "json" in path:
            raise Refused(
                "No need to refer to json, refer to the documentation and build your URL properly."
            )
        params = self.parameters(path)
        return self._kills(params)

    def parameters(self, uri: str) -> dict[str, Any]:
        """`Util::convertUriToParameters` for the keys the fake knows."""
        split = uri.strip().split("/")[1:]
        if len(split) > 1:
            split = split[:-1]
        params: dict[str, Any] = {}
        entity = False
        this_year = self.now().year

        def value() -> str | None:
            return split.pop(0) if split else None

        def need_entity() -> None:
            if not entity:
                raise Refused("Please provide an entity filter first.")

        def number(key: str, raw: str | None, zero_ok: bool = False) -> int:
            if raw is not None and raw.startswith("0") and not zero_ok:
                raise Refused("Do not prefix values with 0")
            if raw is None or not raw.isdigit():
                raise Refused(f"{raw or ''} is not a valid entry for {key}")
            return int(raw)

        while split:
            key = split.pop(0)
            if key == "":
                raise Refused("Please remove the double slash // from the call")
            if key in FLAGS:
                params[key] = True
            elif key in ENTITIES or key in ("character", "corporation", "alliance"):
                raw = value()
                if raw is not None and raw.startswith("0"):
                    raise Refused("Do not prefix values with 0")
                if raw:
                    if "ID" not in key:
                        raise Refused(f"{key} is invalid for API calls, please use {key}ID")
                    if "," in raw:
                        raise Refused(
                            "Due to exccessive abuse, multiple values separated by commas are "
                            "no longer supported"
                        )
                    if not raw.isdigit():
                        raise Refused(f"{raw} is not an integer")
                    params[key] = int(raw)
                    entity = True
            elif key == "page":
                need_entity()
                page = number(key, value())
                if page < 1:
                    raise Refused("page value <= 1 not allowed")
                if page > 100:
                    raise Refused("page value > 100 not allowed")
                params["page"] = page
            elif key == "pastSeconds":
                need_entity()
                seconds = number(key, value())
                if seconds / 86400 > 7:
                    raise Refused("pastSeconds is limited to a max of 7 days")
                if seconds % 3600 != 0:
                    raise Refused(
                        "pastSeconds must be in increments of 3600 - use redisq or the "
                        "websocket if you want up to the second killmails "
                        "https://github.com/zKillboard/zKillboard/wiki"
                    )
                params[key] = seconds
            elif key in ("startTime", "endTime"):
                raise Refused("startTime/endTime no longer supported in api because of abuse")
            elif key == "year":
                need_entity()
                year = number(key, value())
                if year < 2007 or year > this_year:
                    raise Refused(f"{year} is not a valid entry for {key}")
                params[key] = year
            elif key == "month":
                need_entity()
                month = number(key, value(), zero_ok=True)  # zKillboard does not check 0s here
                if not 1 <= month <= 12:
                    raise Refused(f"{month} is not a valid entry for {key}")
                params[key] = month
            elif key in RETIRED:
                raise Refused(RETIRED[key])
            elif key in DISABLED or key == "json":
                raise Refused(f"{key} has been permanently disabled.")
            elif key in ("beforeKillID", "afterKillID"):
                raise Refused(
                    f"{key} has been permanently disabled - please use page, RedisQ, the "
                    "websocket, or the history endpoint instead."
                )
            else:
                raise Refused(f"{key} is an invalid parameter")
        return params

    def _kills(self, params: Mapping[str, Any]) -> list[Any]:
        now = self.now()
        with self.lock:
            mails = list(self.mails.values())
        for key, attribute in (
            ("characterID", "characters"),
            ("corporationID", "corporations"),
            ("allianceID", "alliances"),
        ):
            if key in params:
                mails = [m for m in mails if params[key] in getattr(m, attribute)]
        if "month" in params:  # `year` alone filters nothing
            year = params.get("year", now.year)
            mails = [m for m in mails if (m.time.year, m.time.month) == (year, params["month"])]
        if "pastSeconds" in params:
            since = now - dt.timedelta(seconds=params["pastSeconds"])
            mails = [m for m in mails if m.time >= since]
        mails.sort(key=lambda m: m.killmail_id, reverse=True)
        page = params.get("page", 1)
        chosen = mails[(page - 1) * self.page_size : page * self.page_size]
        young = now - dt.timedelta(seconds=YOUNG_SECONDS)
        out: list[Any] = []
        for mail in chosen:
            if mail.time > young:
                continue  # left out after paging, as zKillboard does
            if self.old_shape:
                out.append({"killmail_id": mail.killmail_id, "zkb": mail.zkb})
            else:
                out.append({**mail.body, "zkb": mail.zkb})
        return out


def derived(
    envelope: Mapping[str, Any],
    killmail_id: int,
    when: dt.datetime,
    victim: int | None = None,
    attackers: Iterable[int] = (),
) -> dict[str, Any]:
    """A synthetic but valid mail made from a real one (R2Z2 shape): its id, time and hash
    rewritten, its victim's character id set to `victim` (when given) and its first
    attackers' character ids to `attackers`; values, ships, items and systems stay real."""
    body = json.loads(json.dumps(envelope["esi"]))
    body["killmail_id"] = killmail_id
    body["killmail_time"] = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if victim is not None:
        body["victim"]["character_id"] = victim
    for attacker, character in zip(body["attackers"], attackers, strict=False):
        attacker["character_id"] = character
    hash_ = hashlib.sha1(f"wn-persist-test-{killmail_id}".encode()).hexdigest()
    zkb = {**(envelope.get("zkb") or {}), "hash": hash_}
    return {"killmail_id": killmail_id, "hash": hash_, "esi": body, "zkb": zkb}
