"""The dashboard in a real browser: Debian's chromium and chromedriver, driven by Selenium,
against a real server (waitress on a free port) over the real corpus, on SQLite and
PostgreSQL. Nothing is downloaded: Selenium gets the system binaries and SE_OFFLINE.

Screenshots go to `WN_DASHBOARD_SCREENSHOTS` when set (docs/img/ comes from there), else to
a temporary folder. Without chromium the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_support import BACKENDS, TOKEN, new_database_url, persist, settings_for, track, tracked_of

from wn_persist_plugin.api.app import create_app
from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.api.server import ApiServer
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.enrichment import static_data
from wn_persist_plugin.statistics.aggregation import aggregate

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip
WAIT = 30
DESKTOP = (1366, 900, 1)
PHONE = (390, 844, 2)
LEADERBOARD_LIMIT = 25
MAIL_PAGE = 20
UNAUTHORIZED = "401 (Unauthorized)"


def _unavailable(reason: str) -> None:
    message = f"the browser test needs {reason} (apt-get install chromium chromium-driver)"
    if IN_CI:
        pytest.fail(message + "; CI=true: it must run", pytrace=False)
    pytest.skip(message)


@dataclass
class Site:
    backend: str
    base: str
    """The server without a token."""
    locked: str
    """The same data behind `TOKEN`."""

    def api(self, path: str, **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"{self.base}/api/v1/{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest,
    real_envelopes: list[dict],
    real_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """The real corpus, with the static data for names and regions, stored and aggregated,
    served twice over HTTP: open and locked."""
    url = new_database_url(request.param, request, tmp_path_factory.mktemp("dashboard"))
    db = open_database(url)
    migrator.migrate(db)
    db.connect(reuse_if_open=True)
    static_data.import_directory(db, real_data_dir / "universe")
    tracked = tracked_of(real_envelopes)
    track(tracked)
    persist(real_envelopes, tracked)
    aggregate(db)
    db.close()
    api_db = open_database(url, bind=False)
    servers = []
    for env in ({}, {"PERSISTENCE_API_TOKEN": TOKEN}):
        app = create_app(settings_for(url, **env), api_db, make_registry(api_db))
        server = ApiServer(app, "127.0.0.1", 0, threads=4)
        server.start_thread()
        servers.append(server)
    open_site, locked = (f"http://127.0.0.1:{s.port}" for s in servers)
    yield Site(request.param, open_site, locked)
    for server in servers:
        server.stop()
    api_db.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        _unavailable(" and ".join(missing))
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium (the [test] extra)")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        viewport(browser, *DESKTOP)
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def console(driver: Any) -> Iterator[list[dict[str, Any]]]:
    """The browser console entries logged during the test (drained before it starts)."""
    driver.get_log("browser")
    entries: list[dict[str, Any]] = []
    yield entries


def severe(driver: Any, entries: list[dict[str, Any]]) -> list[str]:
    entries.extend(driver.get_log("browser"))
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


def viewport(driver: Any, width: int, height: int, scale: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": width < 600},
    )


def state(driver: Any) -> tuple[str | None, str | None]:
    return tuple(  # type: ignore[return-value]
        driver.execute_script(
            "const d = document.documentElement.dataset; return [d.state || null, d.view || null];"
        )
    )


def wait_ready(driver: Any, view: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(lambda d: state(d)[0] in ("ready", "error"))
    assert state(driver) == ("ready", view), driver.find_element("id", "view").text


def open_view(driver: Any, base: str, fragment: str, view: str) -> None:
    """A full page load of `fragment`, waiting until the view has drawn."""
    driver.get("about:blank")
    driver.get(f"{base}/{fragment}")
    wait_ready(driver, view)


def change(driver: Any, control_id: str, value: str, view: str) -> None:
    """Pick `value` in a selector the way a user does, and wait for the redrawn view."""
    from selenium.webdriver.support.ui import Select

    driver.execute_script("document.documentElement.dataset.state = 'stale';")
    Select(driver.find_element("id", control_id)).select_by_value(value)
    wait_ready(driver, view)


SERIES_COLORS = ["#4ade80", "#f87171", "#60a5fa", "#fbbf24"]
"""The data colours of dashboard.js (kills, deaths and the heatmap, ISK destroyed, ISK lost)."""


@dataclass
class Pixels:
    area: int
    drawn: int
    """Non-transparent pixels."""
    data: int
    """Pixels in a data colour outside the legend: bars and heatmap cells, not axes, grid,
    text or legend boxes."""


def canvas_pixels(driver: Any) -> dict[str, Pixels]:
    """Per canvas of the page, its pixels read back with getImageData."""
    found = driver.execute_script(
        """
        const series = arguments[0].map(
          (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
        const out = {};
        document.querySelectorAll("canvas").forEach((canvas, i) => {
          const name = canvas.dataset.chart || `canvas-${i}`;
          const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          const chart = Chart.getChart(canvas);
          const legend = chart && chart.options.plugins.legend.display !== false
            ? chart.legend : null;
          const scale = chart ? chart.currentDevicePixelRatio : 1;
          const inLegend = (x, y) => legend && x >= legend.left * scale && x <= legend.right * scale
            && y >= legend.top * scale && y <= legend.bottom * scale;
          let drawn = 0, marks = 0;
          for (let p = 0; p < data.length; p += 4) {
            if (data[p + 3] === 0) continue;
            drawn++;
            const x = (p / 4) % canvas.width, y = Math.floor(p / 4 / canvas.width);
            const near = ([r, g, b]) => Math.abs(data[p] - r) < 10
              && Math.abs(data[p + 1] - g) < 10 && Math.abs(data[p + 2] - b) < 10;
            if (data[p + 3] > 40 && !inLegend(x, y) && series.some(near)) marks++;
          }
          out[name] = [canvas.width * canvas.height, drawn, marks];
        });
        return out;
        """,
        SERIES_COLORS,
    )
    return {name: Pixels(*values) for name, values in found.items()}


def assert_drawn(pixels: dict[str, Pixels], where: str) -> None:
    assert pixels, where
    for name, seen in pixels.items():
        assert seen.area > 0 and seen.drawn > seen.area * 0.02, (where, name, seen)
        assert seen.data > 200, (where, name, seen)


def busiest_period(site: Site, period: str) -> str:
    items = site.api("group/stats", period=period)["items"]
    return max(items, key=lambda i: (i["kills"], i["period_start"]))["period_start"]


def busiest_character(site: Site) -> int:
    items = site.api("characters")["items"]
    return max(items, key=lambda c: (c["kills"] + c["deaths"], -c["id"]))["id"]


def board_rows(driver: Any) -> list[dict[str, Any]]:
    return driver.execute_script(
        """
        return [...document.querySelectorAll("#leaderboard tbody tr")].map((tr) => ({
          id: Number(tr.dataset.characterId),
          value: tr.dataset.value,
          rank: tr.cells[0].textContent,
          metrics: Object.fromEntries([...tr.querySelectorAll("td[data-metric]")].map(
            (td) => [td.dataset.metric, td.textContent])),
        }));
        """
    )


def assert_board_matches_api(driver: Any, site: Site, period: str, by: str) -> None:
    start = driver.find_element("id", "select-start").get_attribute("value")
    expected = site.api("leaderboard", period=period, start=start, by=by, limit=LEADERBOARD_LIMIT)
    rows = board_rows(driver)
    assert expected["items"], (period, start, by)
    assert [r["id"] for r in rows] == [i["character_id"] for i in expected["items"]]
    for row, item in zip(rows, expected["items"], strict=True):
        assert row["rank"] == str(item["rank"])
        shown = row["metrics"]
        assert shown["kills"] == f"{item['kills']:,}" and shown["deaths"] == f"{item['deaths']:,}"
        assert by in shown
        if item[by] is None:
            assert row["value"] == ""
        else:
            assert float(row["value"]) == pytest.approx(float(item[by]))


def test_leaderboard_rows_equal_the_api(driver, site, console):
    open_view(driver, site.base, "#/leaderboard", "leaderboard")
    newest = site.api("group/stats", period="monthly")["items"][-1]["period_start"]
    assert driver.find_element("id", "select-start").get_attribute("value") == newest
    assert_board_matches_api(driver, site, "monthly", "kills")
    busiest = busiest_period(site, "monthly")
    change(driver, "select-start", busiest, "leaderboard")
    assert_board_matches_api(driver, site, "monthly", "kills")
    for by in ("isk_destroyed", "efficiency", "deaths", "final_blows"):
        change(driver, "select-by", by, "leaderboard")
        assert_board_matches_api(driver, site, "monthly", by)
    for period in ("weekly", "daily"):
        start = busiest_period(site, period)
        fragment = f"#/leaderboard?period={period}&by=isk_destroyed&start={start}"
        open_view(driver, site.base, fragment, "leaderboard")
        assert_board_matches_api(driver, site, period, "isk_destroyed")
    assert severe(driver, console) == []


def test_every_chart_canvas_has_drawn_pixels(driver, site, console):
    character = busiest_character(site)
    page_charts = {"trend-counts", "trend-isk", "activity-heatmap", "top-ships", "top-regions"}
    views = [
        ("#/", "group", {"trend-counts", "trend-isk"}),
        ("#/?period=weekly", "group", {"trend-counts", "trend-isk"}),
        (f"#/leaderboard?start={busiest_period(site, 'monthly')}", "leaderboard", {"leaderboard"}),
        (f"#/character/{character}", "character", page_charts),
        (f"#/character/{character}?period=weekly", "character", page_charts),
    ]
    for fragment, view, names in views:
        open_view(driver, site.base, fragment, view)
        pixels = canvas_pixels(driver)
        assert set(pixels) == names, fragment
        assert_drawn(pixels, fragment)
    grid = site.api(f"characters/{character}/activity")["counts"]
    heat = driver.find_element("css selector", "canvas[data-chart='activity-heatmap']")
    assert heat.get_attribute("data-max") == str(max(max(row) for row in grid))
    assert severe(driver, console) == []


def test_character_page_lists_the_right_mails(driver, site, console):
    character = busiest_character(site)
    open_view(driver, site.base, f"#/character/{character}", "character")
    expected = site.api(f"characters/{character}/killmails", limit=MAIL_PAGE)["items"]
    shown = driver.execute_script(
        """
        return [...document.querySelectorAll("#mails li")].map((li) => ({
          id: Number(li.dataset.killmailId), role: li.dataset.role,
          link: li.querySelector("a.zkb").href,
        }));
        """
    )
    assert expected
    assert [(m["id"], m["role"]) for m in shown] == [
        (i["killmail_id"], i["role"]) for i in expected
    ]
    assert [m["link"] for m in shown] == [
        f"https://zkillboard.com/kill/{i['killmail_id']}/" for i in expected
    ]
    profile = site.api(f"characters/{character}")
    title = driver.find_element("css selector", "main h1").text
    assert title == profile["name"]
    # A character with losses shows them too (the victim side of the same list).
    loser = next(
        c["id"] for c in sorted(site.api("characters")["items"], key=lambda c: -c["deaths"])
    )
    open_view(driver, site.base, f"#/character/{loser}", "character")
    roles = driver.execute_script(
        "return [...document.querySelectorAll('#mails li')].map((li) => li.dataset.role);"
    )
    expected = site.api(f"characters/{loser}/killmails", limit=MAIL_PAGE)["items"]
    assert roles == [i["role"] for i in expected] and "victim" in roles
    assert severe(driver, console) == []


def test_characters_and_group_views(driver, site, console):
    open_view(driver, site.base, "#/characters", "characters")
    listed = site.api("characters")["items"]
    ids = driver.execute_script(
        "return [...document.querySelectorAll('#characters tbody tr')]"
        ".map((tr) => Number(tr.dataset.characterId));"
    )
    by_kills = sorted(listed, key=lambda c: (-c["kills"], -c["deaths"], c["id"]))
    assert ids == [c["id"] for c in by_kills[: len(ids)]] and len(ids) == min(100, len(listed))
    driver.find_element("css selector", "button.more").click()
    more = driver.execute_script("return document.querySelectorAll('#characters tbody tr').length;")
    assert more == min(200, len(listed))
    open_view(driver, site.base, "#/", "group")
    totals = site.api("group/stats", period="monthly")["totals"]
    cards = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.card')].map((c) => ["
        "c.querySelector('.card-label').textContent,"
        " c.querySelector('.card-value').textContent]));"
    )
    assert cards["Kills"] == f"{totals['kills']:,}" and cards["Losses"] == f"{totals['deaths']:,}"
    assert cards["ISK destroyed"].endswith(("m", "b", "t"))
    assert severe(driver, console) == []


def test_token_prompt_then_data(driver, site, console):
    """With a token set: the first call answers 401, the page asks, then shows the data;
    a refused token asks again; the token lasts for the tab's session."""
    from selenium.webdriver.support.ui import WebDriverWait

    def prompt_says(text: str) -> None:
        WebDriverWait(driver, WAIT).until(
            lambda d: (
                state(d)[0] == "token"
                and text in d.find_element("id", "token-message").text
                and d.find_element("id", "token-dialog").is_displayed()
            )
        )

    def answer(token: str) -> None:
        field = driver.find_element("id", "token-input")
        field.send_keys(token)
        driver.find_element("id", "token-submit").click()

    driver.get("about:blank")
    driver.get(f"{site.locked}/#/leaderboard")
    prompt_says("needs its API token")
    answer("not-the-token")
    prompt_says("refused")
    answer(TOKEN)
    wait_ready(driver, "leaderboard")
    assert_board_matches_api(driver, site, "monthly", "kills")
    errors = severe(driver, console)
    assert len(errors) == 2 and all(UNAUTHORIZED in e for e in errors), errors
    open_view(driver, site.locked, f"#/character/{busiest_character(site)}", "character")
    assert driver.execute_script("return sessionStorage.length;") == 1
    assert severe(driver, console) == errors, "asked again within the session"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_screenshots_desktop_and_phone(driver, site, console, tmp_path):
    folder = Path(os.environ.get("WN_DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    character = busiest_character(site)
    views = {
        "group": "#/",
        "leaderboard": f"#/leaderboard?start={busiest_period(site, 'monthly')}&by=isk_destroyed",
        "character": f"#/character/{character}",
    }
    try:
        for device, (width, height, scale) in {"desktop": DESKTOP, "phone": PHONE}.items():
            viewport(driver, width, height, scale)
            for view, fragment in views.items():
                open_view(driver, site.base, fragment, view)
                overflow = driver.execute_script(
                    "return document.documentElement.scrollWidth - window.innerWidth;"
                )
                assert overflow <= 0, f"{view} scrolls sideways on the {device}"
                assert_drawn(canvas_pixels(driver), f"{view} on the {device}")
                path = folder / f"dashboard-{view}-{device}-{site.backend}.png"
                assert driver.save_screenshot(str(path))
                assert _png_size(path) == (width * scale, height * scale)
    finally:
        viewport(driver, *DESKTOP)
    assert severe(driver, console) == []
