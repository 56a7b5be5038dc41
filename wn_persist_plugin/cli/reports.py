"""`report`: post a period's summary and leaderboard chart to a Discord webhook."""

from __future__ import annotations

import datetime as dt

import click

from ..errors import DiscordError, ExtraMissing, InvalidParameter
from .main import AppContext, fail, pass_app


@click.command()
@click.option("--period", type=click.Choice(["daily", "weekly", "monthly"]), default="weekly",
              show_default=True)  # fmt: skip
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of the period (default: the last complete one).")  # fmt: skip
@click.option("--webhook", default=None, metavar="URL",
              help="Discord webhook URL (default: DISCORD_WEBHOOK_URL; prefer the setting, "
              "a command line is visible to other users).")  # fmt: skip
@pass_app
def report(app: AppContext, period: str, start: dt.datetime | None, webhook: str | None) -> None:
    """Post the group's report of one period to Discord: kills, losses, ISK, efficiency,
    top 5 pilots, the most expensive kill, and the kills leaderboard as a PNG.

    Example: wn-persist report --period weekly --start 2026-03-02
    """
    from .. import charts
    from ..reports.job import post_report

    if not charts.available():
        fail(charts.CHARTS_EXTRA_HINT, code=1)
    try:
        posted = post_report(
            app.db, app.settings, period, start.date() if start else None, webhook_url=webhook
        )
    except InvalidParameter as exc:
        fail(f"--{exc.parameter}: {exc.problem}")
    except ExtraMissing as exc:
        fail(str(exc), code=1)
    except DiscordError as exc:
        fail(str(exc), code=1)
    summary = posted.summary
    click.echo(
        f"posted the {period} report of {summary.start} to {summary.end}: "
        f"{summary.totals['kills']} kills, {summary.totals['deaths']} losses",
        err=True,
    )


def register(group: click.Group) -> None:
    group.add_command(report)
