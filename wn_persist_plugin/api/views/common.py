"""Helpers the views share: path ids, JSON bodies with ETags."""

from __future__ import annotations

import hashlib
from typing import Any

import falcon

from ...db.fields import MAX_ID
from ..encode import dumps
from ..errors import bad_parameter


def path_id(value: str, name: str) -> int:
    """A numeric id from the path, else a 400 naming it."""
    if not value.isdigit() or int(value) > MAX_ID:
        raise bad_parameter(name, f"{value!r} is not a numeric id")
    return int(value)


def etag_matches(header: str | None, tag: str) -> bool:
    """True when an If-None-Match header names `tag` (weak or strong) or `*`."""
    if not header:
        return False
    for part in header.split(","):
        candidate = part.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate in (tag, "*"):
            return True
    return False


def send_json(req: falcon.Request, resp: falcon.Response, data: Any, *, etag: bool = False) -> None:
    """`data` as JSON; with `etag`, an ETag of the body and 304 when If-None-Match has it."""
    body = dumps(data)
    if etag:
        tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        resp.set_header("ETag", tag)
        if etag_matches(req.get_header("If-None-Match"), tag):
            resp.status = falcon.HTTP_304
            return
    resp.content_type = falcon.MEDIA_JSON
    resp.data = body
