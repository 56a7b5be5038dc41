"""Every chart from the CLI and from the API on SQLite and PostgreSQL with the real
corpus: a PNG of the size asked for, with drawn pixels; a "no data" image for an empty
range; bad parameters answered 400 naming the parameter; ETags; rendering from threads."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_support import (
    seeded_database,  # noqa: F401 - the `seeded` fixture
)
from chart_support import arguments, busiest, drawn_pixels, png_size
from click.testing import CliRunner

from wn_persist_plugin.charts import CHART_NAMES, ChartRequest, load_chart, render_png
from wn_persist_plugin.cli import main
from wn_persist_plugin.db.connect import database_proxy

ENV_BASE = {"ENABLE_PERSISTENCE": "", "POSTGRES_HOST": ""}


@pytest.fixture(autouse=True)
def cli_binds_its_own_database(seeded):
    """The CLI binds the models to the database it opens; give them back afterwards."""
    yield
    if database_proxy.obj is not seeded.db:
        database_proxy.obj.close()
        database_proxy.initialize(seeded.db)


def cli_args(options: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        out += [f"--{key}", value]
    return out


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_chart_renders_from_the_api(seeded, name):
    character, month = busiest(seeded.db)
    params = arguments(name, character, month)
    resp = seeded.client.simulate_get(f"/api/v1/charts/{name}.png", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert png_size(resp.content) == (1200, 600)
    assert drawn_pixels(resp.content) > 20_000
    tag = resp.headers["etag"]
    again = seeded.client.simulate_get(
        f"/api/v1/charts/{name}.png", params=params, headers={"If-None-Match": tag}
    )
    assert again.status_code == 304 and again.headers["etag"] == tag
    # an empty range (or a period without statistics) draws "no data", never an error
    empty = (
        {"start": "2001-01-01"} if name.startswith("leaderboard")
        else {**params, "from": "2001-01-01", "to": "2001-01-31"}
    )  # fmt: skip
    if name == "group-trend":
        empty.pop("period")
    nothing = seeded.client.simulate_get(f"/api/v1/charts/{name}.png", params=empty)
    assert nothing.status_code == 200, nothing.text
    assert png_size(nothing.content) == (1200, 600)
    assert nothing.content != resp.content and nothing.headers["etag"] != tag
    assert 0 < drawn_pixels(nothing.content) < drawn_pixels(resp.content)


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_chart_renders_from_the_cli(seeded, name, tmp_path):
    character, month = busiest(seeded.db)
    out = tmp_path / f"{name}.png"
    args = ["chart", name, *cli_args(arguments(name, character, month)), "--width", "640",
            "--height", "360", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args, env={**ENV_BASE, "DATABASE_URL": seeded.url})
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert png_size(data) == (640, 360)
    assert drawn_pixels(data) > 5_000
    # the CLI and the API draw the same image
    params = {**arguments(name, character, month), "width": "640", "height": "360"}
    api = seeded.client.simulate_get(f"/api/v1/charts/{name}.png", params=params)
    assert api.content == data


@pytest.mark.parametrize(
    ("name", "params", "parameter"),
    [
        ("pie-chart", {}, "name"),
        ("top-ships", {"width": "10"}, "width"),
        ("top-ships", {"height": "99999"}, "height"),
        ("top-ships", {"period": "yearly"}, "period"),
        ("top-ships", {"from": "2020-02-01", "to": "2020-01-01"}, "from"),
        ("top-ships", {"from": "yesterday"}, "from"),
        ("top-ships", {"start": "2020-01-01"}, "start"),
        ("character-trend", {}, "character"),
        ("group-trend", {"character": "90000001"}, "character"),
        ("leaderboard-kills", {"start": "2020-01-02"}, "start"),
        ("leaderboard-isk", {"from": "2020-01-01"}, "from"),
        ("leaderboard-kills", {"limit": "0"}, "limit"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(seeded, name, params, parameter):
    resp = seeded.client.simulate_get(f"/api/v1/charts/{name}.png", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json["invalid_params"][0]["name"] == parameter


def test_unknown_character_is_a_404(seeded):
    resp = seeded.client.simulate_get("/api/v1/charts/character-trend.png?character=424242")
    assert resp.status_code == 404


def test_cli_refuses_bad_parameters_in_one_line(seeded, tmp_path):
    env = {**ENV_BASE, "DATABASE_URL": seeded.url}
    out = str(tmp_path / "x.png")
    result = CliRunner().invoke(main, ["chart", "leaderboard-kills", "--from", "2020-01-01",
                                       "--out", out], env=env)  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip() == (
        "wn-persist: error: --from: leaderboard-kills shows one period: use start"
    )
    result = CliRunner().invoke(main, ["chart", "pie", "--out", out], env=env)
    assert result.exit_code == 2 and "NAME: 'pie' is not one of" in result.output


def test_charts_render_concurrently_from_threads(seeded):
    character, month = busiest(seeded.db)
    requests = []
    for name in CHART_NAMES:
        params = arguments(name, character, month)
        requests.append(
            ChartRequest(
                name,
                character=int(params["character"]) if "character" in params else None,
                period=params.get("period", "monthly"),
                start=month if "start" in params else None,
            )
        )
    charts = [load_chart(seeded.db, r) for r in requests]
    alone = [render_png(c) for c in charts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(render_png, charts * 3))
    assert together == alone * 3


def test_without_the_extra(seeded, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    resp = seeded.client.simulate_get("/api/v1/charts/top-ships.png")
    assert resp.status_code == 501
    assert "pip install 'wn-persist-plugin[charts]'" in resp.json["detail"]
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from wn_persist_plugin.cli import main\n"
        "main(['chart', 'top-ships', '--out', '/dev/null'])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"DATABASE_URL": seeded.url, "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "wn-persist: error: charts need their extra: pip install 'wn-persist-plugin[charts]'"
    )
