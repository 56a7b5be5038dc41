"""The dashboard: `/` serves the page and `/static/{name}` its files (stylesheet, script,
the vendored Chart.js), read once from the package data. Neither needs the API token; the
JSON the page fetches does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import falcon

from ..errors import Problem

STATIC_PREFIX = "/static/"
ROUTES = ("/", STATIC_PREFIX + "{name}")
"""The dashboard's routes (not part of the JSON API's OpenAPI document)."""
PAGE = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Only this server's own files: no inline script or style, no CDN, no external font."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static() -> dict[str, StaticFile]:
    """Every file of the package's `api/static` folder with a known type, by name."""
    folder = resources.files("wn_persist_plugin.api").joinpath("static")
    files: dict[str, StaticFile] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        files[entry.name] = StaticFile(body, CONTENT_TYPES[suffix], tag)
    return files


def _send(req: falcon.Request, resp: falcon.Response, item: StaticFile) -> None:
    resp.set_headers(SECURITY_HEADERS)
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("ETag", item.etag)
    if item.etag in (req.get_header("If-None-Match") or ""):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = item.content_type
    resp.data = item.body


class DashboardPage:
    """`/`: the single page; its views live in the URL fragment (`#/character/ID`)."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self.page = files[PAGE]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _send(req, resp, self.page)

    on_head = on_get


class StaticFiles:
    """`/static/{name}`: one file of the package's static folder (no sub-folders)."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self.files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        item = self.files.get(name)
        if item is None:
            raise Problem(404, f"no static file {name!r}")
        _send(req, resp, item)

    on_head = on_get


def add_routes(app: falcon.App) -> None:
    """Register `/` and `/static/{name}` on `app`."""
    files = load_static()
    page, static = ROUTES
    app.add_route(page, DashboardPage(files))
    app.add_route(static, StaticFiles(files))
