"""The dashboard's files as the app serves them: `/` and `/static/{name}` without the
token (the JSON still needs it), a strict Content-Security-Policy, only local files, and
every vendored file listed with its source and licence."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from api_support import TOKEN, settings_for
from falcon import testing

from wn_persist_plugin.api.app import create_app
from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.api.views.dashboard import CONTENT_SECURITY_POLICY
from wn_persist_plugin.db.connect import open_database

STATIC = Path(str(resources.files("wn_persist_plugin.api").joinpath("static")))


class _References(HTMLParser):
    """The page's script, stylesheet and icon references, and whether it has inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = True
            if found.get("src"):
                self.refs.append(found["src"] or "")
            else:
                self.inline.append("<script> without src")
        elif tag in ("link", "img") and (found.get("href") or found.get("src")):
            self.refs.append(found.get("href") or found.get("src") or "")
        for name, _value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"{tag} {name}=")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> testing.TestClient:
    url = f"sqlite:///{tmp_path_factory.mktemp('static') / 'x.db'}"
    db = open_database(url, bind=False)
    settings = settings_for(url, PERSISTENCE_API_TOKEN=TOKEN)
    return testing.TestClient(create_app(settings, db, make_registry(db)))


def test_page_and_files_need_no_token_but_the_api_does(client):
    page = client.simulate_get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    parser = _References()
    parser.feed(page.text)
    assert parser.inline == []
    assert parser.refs and all(ref.startswith("static/") for ref in parser.refs), parser.refs
    for ref in parser.refs:
        served = client.simulate_get("/" + ref)
        assert served.status_code == 200, ref
        assert served.content == (STATIC / ref.removeprefix("static/")).read_bytes()
    assert client.simulate_get("/api/v1/characters").status_code == 401
    assert client.simulate_head("/").status_code == 200


def test_static_types_etag_and_unknown_names(client):
    js = client.simulate_get("/static/dashboard.js")
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    again = client.simulate_get(
        "/static/dashboard.js", headers={"If-None-Match": js.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert (
        client.simulate_get("/static/dashboard.css").headers["content-type"].startswith("text/css")
    )
    for name in ("nope.js", "..%2fapp.py", "../app.py", "__init__.py"):
        missing = client.simulate_get(f"/static/{name}")
        assert missing.status_code == 404, name
        assert missing.headers["content-type"] == "application/problem+json"


def test_openapi_leaves_the_dashboard_out(client):
    paths = client.simulate_get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json[
        "paths"
    ]
    assert "/" not in paths and "/static/{name}" not in paths
    assert "/api/v1/leaderboard" in paths


def test_no_external_url_and_every_vendored_file_listed():
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (STATIC / name).read_text()
        urls = re.findall(r"https?://[^\s\"'`)]+", text)
        # The only absolute URLs are links out to zKillboard (never fetched).
        assert all(u.startswith("https://zkillboard.com/") for u in urls), (name, urls)
        assert "@import" not in text and "fonts.googleapis" not in text
    listing = (STATIC / "LICENSES.md").read_text()
    for path in STATIC.iterdir():
        if path.name != "LICENSES.md":
            assert f"`{path.name}`" in listing, path.name
    charts = sorted(STATIC.glob("chart-*.umd.min.js"))
    assert len(charts) == 1
    version = charts[0].name.removeprefix("chart-").removesuffix(".umd.min.js")
    head = charts[0].read_text()[:600]
    assert f"https://registry.npmjs.org/chart.js/-/chart.js-{version}.tgz" in head
    assert "MIT License" in head and f"Chart.js v{version}" in head
    assert "//# sourceMappingURL" not in charts[0].read_text()
    assert f'src="static/{charts[0].name}"' in (STATIC / "index.html").read_text()
    assert (STATIC / "chart.js-LICENSE.md").read_text().startswith("The MIT License")
