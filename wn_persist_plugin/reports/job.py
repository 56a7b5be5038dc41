"""Posting a period's report, by hand (`post_report`) or on the schedule
(`run_scheduled_report`: the last complete week, once per period).

Once per period, whatever the number of processes: the scheduled post runs under the
`report` job lock, and a period is recorded in `reports_sent` only after Discord accepted
it; a process that finds the period recorded posts nothing. A failed post records nothing,
so the next scheduled run tries again. The lock is not the statistics lock: a slow post
never holds up aggregation.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from peewee import Database

from .. import charts
from ..db.joblock import job_lock
from ..db.models import ReportSent
from ..errors import ConfigError, JobBusy
from ..settings import Settings
from . import summary as summaries
from .discord import DiscordWebhook

log = logging.getLogger(__name__)
REPORT_JOB = "report"
SCHEDULED_PERIOD = "weekly"


@dataclass(frozen=True)
class Posted:
    summary: summaries.Summary
    message_id: str | None


def leaderboard_png(db: Database, period: str, start: dt.date) -> bytes:
    """The period's kills leaderboard chart (needs the `charts` extra)."""
    chart = charts.load_chart(
        db, charts.ChartRequest("leaderboard-kills", period=period, start=start)
    )
    return charts.render_png(chart)


def post_report(
    db: Database,
    settings: Settings,
    period: str = SCHEDULED_PERIOD,
    start: dt.date | None = None,
    *,
    webhook_url: str | None = None,
    webhook: DiscordWebhook | None = None,
    today: dt.date | None = None,
) -> Posted:
    """Post the report of the period starting on `start` (default: the last complete
    one) to `webhook` / `webhook_url` / `DISCORD_WEBHOOK_URL`. Raises `ConfigError`
    without a webhook, `InvalidParameter` for a bad period, the `DiscordError` family when
    Discord refuses, `ExtraMissing` without the `charts` extra."""
    if start is None:
        start = summaries.last_complete_period(period, today or dt.datetime.now(dt.UTC).date())
    found = summaries.build_summary(db, period, start)
    png = leaderboard_png(db, period, found.start)
    own = webhook is None
    if webhook is None:
        url = webhook_url or settings.reports.webhook_url
        if not url:
            raise ConfigError("DISCORD_WEBHOOK_URL", "is not set (no webhook to post to)")
        webhook = DiscordWebhook(url, contact=settings.user_agent_contact)
    try:
        message = webhook.post(summaries.payload(found), [(summaries.ATTACHMENT, png, "image/png")])
    finally:
        if own:
            webhook.close()
    log.info("posted the %s report of %s to Discord", period, found.start)
    message_id = message.get("id")
    return Posted(found, str(message_id) if message_id is not None else None)


def already_reported(db: Database, period: str, start: dt.date) -> bool:
    return (
        ReportSent.get_or_none(
            (ReportSent.period_type == period) & (ReportSent.period_start == start)
        )
        is not None
    )


def run_scheduled_report(
    db: Database,
    settings: Settings,
    now: dt.datetime,
    *,
    webhook: DiscordWebhook | None = None,
) -> str:
    """The scheduled job: post the last complete week's report unless some process has
    posted it. Returns `sent`, `already sent`, `busy` (another process holds the lock) or
    `no webhook`; a failed post raises (nothing is recorded: the next run retries)."""
    if webhook is None and not settings.reports.webhook_url:
        log.warning("report schedule set but DISCORD_WEBHOOK_URL is not: no report posted")
        return "no webhook"
    start = summaries.last_complete_period(SCHEDULED_PERIOD, now.astimezone(dt.UTC).date())
    try:
        with job_lock(db, REPORT_JOB, wait=0):
            if already_reported(db, SCHEDULED_PERIOD, start):
                return "already sent"
            post_report(db, settings, SCHEDULED_PERIOD, start, webhook=webhook)
            ReportSent.insert(
                period_type=SCHEDULED_PERIOD, period_start=start, sent_at=dt.datetime.now(dt.UTC)
            ).on_conflict_ignore().execute()
            return "sent"
    except JobBusy:
        log.info("report job skipped: another process is posting it")
        return "busy"
