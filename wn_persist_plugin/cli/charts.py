"""`chart`: one PNG chart to a file (extra `charts`)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from ..errors import InvalidParameter, UnknownCharacter
from .main import CHARACTER_ID, AppContext, fail, pass_app

_DAY = click.DateTime(["%Y-%m-%d"])


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None


def chart_options(command: Any) -> Any:
    """The options every chart takes (the API's query parameters)."""
    for option in reversed(
        [
            click.option(
                "--character",
                type=CHARACTER_ID,
                default=None,
                help="Character id (default: the group).",
            ),
            click.option(
                "--period",
                type=click.Choice(["daily", "weekly", "monthly"]),
                default="monthly",
                show_default=True,
            ),
            click.option(
                "--start",
                type=_DAY,
                default=None,
                help="Leaderboards: first day of the period (default: current).",
            ),
            click.option("--from", "first", type=_DAY, default=None, help="First day (UTC)."),
            click.option("--to", "last", type=_DAY, default=None, help="Last day (UTC)."),
            click.option("--width", type=int, default=1200, show_default=True),
            click.option("--height", type=int, default=600, show_default=True),
            click.option(
                "--limit",
                type=int,
                default=10,
                show_default=True,
                help="Bars shown (leaderboards, top lists).",
            ),
        ]  # fmt: skip
    ):
        command = option(command)
    return command


@click.command()
@click.argument("name")
@chart_options
@click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              help="PNG file to write (- for standard output).")  # fmt: skip
@pass_app
def chart(
    app: AppContext,
    name: str,
    character: int | None,
    period: str,
    start: dt.datetime | None,
    first: dt.datetime | None,
    last: dt.datetime | None,
    width: int,
    height: int,
    limit: int,
    out: str,
) -> None:
    """Draw chart NAME as a PNG: leaderboard-kills, leaderboard-isk, character-trend,
    group-trend, activity-heatmap, top-ships, top-regions.

    Example: wn-persist chart leaderboard-kills --period weekly --start 2026-03-02 --out lb.png
    """
    from .. import charts

    try:
        request = charts.ChartRequest(
            name, character, period, _day(start), _day(first), _day(last), width, height, limit
        ).checked()
        if not charts.available():
            fail(charts.CHARTS_EXTRA_HINT, code=1)
        drawn = charts.load_chart(app.db, request)
    except InvalidParameter as exc:
        shown = "NAME" if exc.parameter == "name" else f"--{exc.parameter}"
        fail(f"{shown}: {exc.problem}")
    except UnknownCharacter as exc:
        fail(str(exc))
    png = charts.render_png(drawn)
    if out == "-":
        sys.stdout.buffer.write(png)
    else:
        with open(out, "wb") as fh:
            fh.write(png)
    state = "no data" if drawn.empty else f"{drawn.width}x{drawn.height}"
    click.echo(f"wrote {name} ({state}) to {out}", err=True)


def register(group: click.Group) -> None:
    group.add_command(chart)
