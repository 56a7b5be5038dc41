"""The Discord report against a fake webhook (real HTTP, multipart checked as Discord
does) on SQLite and PostgreSQL with the real corpus: the embed's figures are the API's,
the leaderboard PNG goes as files[0], 429 is honoured, the webhook URL is never shown,
and the scheduled job posts each period once."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from decimal import Decimal

import pytest
from api_support import (
    seeded_database,  # noqa: F401 - the `seeded` fixture
    settings_for,
    value_of,
)
from chart_support import drawn_pixels, png_size
from click.testing import CliRunner
from fakes.discord import PNG_MAGIC, WEBHOOK_TOKEN, FakeDiscord

from wn_persist_plugin.charts.isk import format_isk
from wn_persist_plugin.cli import main
from wn_persist_plugin.db.connect import database_proxy
from wn_persist_plugin.db.models import ReportSent
from wn_persist_plugin.errors import DiscordError, DiscordUnavailable
from wn_persist_plugin.reports.discord import DiscordWebhook
from wn_persist_plugin.reports.job import post_report, run_scheduled_report
from wn_persist_plugin.reports.summary import last_complete_period
from wn_persist_plugin.statistics.scheduler import Scheduler


def busiest_week(db) -> dt.date:
    row = db.execute_sql(
        "SELECT period_start FROM killmail_statistics WHERE period_type = 'weekly' "
        "GROUP BY period_start ORDER BY SUM(kills_count) DESC, period_start LIMIT 1"
    ).fetchall()[0]
    return dt.date.fromisoformat(str(row[0]))


def fields_of(post) -> dict[str, str]:
    return {f["name"]: f["value"] for f in post.payload["embeds"][0]["fields"]}


@pytest.fixture
def discord():
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def clean_reports(seeded):
    ReportSent.delete().execute()
    yield
    ReportSent.delete().execute()


def test_report_figures_are_the_apis(seeded, discord):
    week = busiest_week(seeded.db)
    end = week + dt.timedelta(days=6)
    settings = settings_for(seeded.url, USER_AGENT_CONTACT="ops@example.org")
    posted = post_report(seeded.db, settings, "weekly", week, webhook_url=discord.url)
    [post] = discord.accepted()
    assert posted.message_id == "1000"
    assert post.query == "wait=true"
    assert post.headers["user-agent"].startswith("wn-persist/")
    assert "ops@example.org" in post.headers["user-agent"]
    assert post.headers["content-type"].startswith("multipart/form-data")
    name, kind, png = post.files["files[0]"]
    assert (name, kind) == ("leaderboard.png", "image/png")
    assert png[:8] == PNG_MAGIC and png_size(png) == (1200, 600) and drawn_pixels(png) > 20_000
    embed = post.payload["embeds"][0]
    assert embed["image"]["url"] == "attachment://leaderboard.png"
    assert post.payload["attachments"] == [{"id": 0, "filename": "leaderboard.png"}]

    api = seeded.client.simulate_get(
        "/api/v1/group/stats", params={"period": "weekly", "from": str(week), "to": str(end)}
    ).json["totals"]
    fields = fields_of(post)
    assert fields["Kills"] == f"{api['kills']:,}" and api["kills"] > 0
    assert fields["Losses"] == f"{api['deaths']:,}"
    assert fields["ISK destroyed"] == f"{format_isk(Decimal(api['isk_destroyed']))} ISK"
    assert fields["ISK lost"] == f"{format_isk(Decimal(api['isk_lost']))} ISK"
    assert fields["Efficiency"] == f"{api['efficiency']:.1f}%"
    board = seeded.client.simulate_get(
        "/api/v1/leaderboard",
        params={"period": "weekly", "start": str(week), "by": "kills", "limit": 5},
    ).json["items"]
    lines = fields["Top pilots"].splitlines()
    assert len(lines) == len(board) > 0
    for rank, (line, item) in enumerate(zip(lines, board, strict=True), 1):
        assert line.startswith(f"{rank}. {item['character_name']}: {item['kills']} kills")

    # the most expensive kill, found independently in the corpus
    start = dt.datetime.combine(week, dt.time.min, tzinfo=dt.UTC)
    best_value, best_id = Decimal(-1), None
    for env in sorted(seeded.envelopes, key=lambda e: e["killmail_id"]):
        esi = env.get("esi") or env
        when = dt.datetime.fromisoformat(esi["killmail_time"].replace("Z", "+00:00"))
        attackers = {a.get("character_id") for a in esi.get("attackers", [])}
        if start <= when < start + dt.timedelta(days=7) and attackers & seeded.tracked:
            if value_of(env) > best_value:
                best_value, best_id = value_of(env), env["killmail_id"]
    assert f"(https://zkillboard.com/kill/{best_id}/)" in fields["Most expensive kill"]
    assert f"{format_isk(best_value)} ISK" in fields["Most expensive kill"]


def test_rate_limit_is_honoured(seeded, discord):
    discord.rate_limit(0.3, header="0")  # body's retry_after is longer: wait that
    discord.rate_limit(0.1, header="1")  # header is longer: wait that
    waits: list[float] = []
    hook = DiscordWebhook(discord.url, sleep=waits.append)
    post_report(seeded.db, settings_for(seeded.url), "weekly", busiest_week(seeded.db),
                webhook=hook)  # fmt: skip
    assert waits == [0.3, 1.0]
    assert [p.status for p in discord.posts] == [429, 429, 200]


def test_long_rate_limit_and_refusals_raise_without_the_url(seeded, discord, caplog):
    caplog.set_level(logging.DEBUG)
    discord.rate_limit(3600)
    hook = DiscordWebhook(discord.url, sleep=lambda s: None)
    week = busiest_week(seeded.db)
    with pytest.raises(DiscordUnavailable) as info:
        post_report(seeded.db, settings_for(seeded.url), "weekly", week, webhook=hook)
    assert "rate limited for 3600 s" in str(info.value) and info.value.status == 429
    discord.fail(503, times=4)
    with pytest.raises(DiscordUnavailable) as unavailable:
        post_report(seeded.db, settings_for(seeded.url), "weekly", week, webhook=hook)
    assert "HTTP 503" in str(unavailable.value)
    bad = DiscordWebhook(discord.url + "x", sleep=lambda s: None)
    with pytest.raises(DiscordError) as refused:
        post_report(seeded.db, settings_for(seeded.url), "weekly", week, webhook=bad)
    assert refused.value.status == 404 and "Unknown Webhook" in str(refused.value)
    shown = " ".join(
        [str(info.value), str(unavailable.value), str(refused.value), repr(hook), caplog.text]
    )
    assert WEBHOOK_TOKEN not in shown and discord.url not in shown
    assert "/api/webhooks/112233445566778899/***" in caplog.text  # urllib3's line, masked


@pytest.fixture
def cli_binds_its_own_database(seeded):
    """The CLI binds the models to the database it opens; give them back afterwards."""
    yield
    if database_proxy.obj is not seeded.db:
        database_proxy.obj.close()
        database_proxy.initialize(seeded.db)


def test_cli_report(seeded, discord, cli_binds_its_own_database):
    week = busiest_week(seeded.db)
    result = CliRunner().invoke(
        main,
        ["report", "--period", "weekly", "--start", str(week)],
        env={"DATABASE_URL": seeded.url, "DISCORD_WEBHOOK_URL": discord.url, "POSTGRES_HOST": ""},
    )
    assert result.exit_code == 0, result.output
    assert f"posted the weekly report of {week}" in result.output
    assert len(discord.accepted()) == 1
    discord.fail(400)
    result = CliRunner().invoke(
        main, ["report", "--start", str(week), "--webhook", discord.url],
        env={"DATABASE_URL": seeded.url, "DISCORD_WEBHOOK_URL": "", "POSTGRES_HOST": ""},
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip() == "wn-persist: error: Discord webhook: HTTP 400 (Internal error)"
    result = CliRunner().invoke(main, ["report"], env={"DATABASE_URL": seeded.url,
                                                       "DISCORD_WEBHOOK_URL": ""})  # fmt: skip
    assert result.exit_code == 2 and "DISCORD_WEBHOOK_URL: is not set" in result.output


def test_default_period_is_the_last_complete_one():
    assert last_complete_period("weekly", dt.date(2026, 3, 4)) == dt.date(2026, 2, 23)
    assert last_complete_period("weekly", dt.date(2026, 3, 2)) == dt.date(2026, 2, 23)
    assert last_complete_period("monthly", dt.date(2026, 3, 1)) == dt.date(2026, 2, 1)
    assert last_complete_period("daily", dt.date(2026, 3, 1)) == dt.date(2026, 2, 28)


def test_scheduled_report_once_per_period(seeded, discord, clean_reports):
    week = busiest_week(seeded.db)
    now = dt.datetime.combine(week + dt.timedelta(days=8), dt.time(9), tzinfo=dt.UTC)
    settings = settings_for(seeded.url, DISCORD_WEBHOOK_URL=discord.url,
                            PERSISTENCE_REPORT_SCHEDULE="0 9 * * 1")  # fmt: skip
    # a failed post records nothing: the next run posts
    discord.fail(500, times=4)
    hook = DiscordWebhook(discord.url, sleep=lambda s: None)
    with pytest.raises(DiscordUnavailable):
        run_scheduled_report(seeded.db, settings, now, webhook=hook)
    assert ReportSent.select().count() == 0
    # several instances at once: one posts, the others find it taken or done
    discord.delay = 0.5
    results: list[str] = []

    def instance() -> None:
        results.append(run_scheduled_report(seeded.db, settings, now))
        seeded.db.close()

    threads = [threading.Thread(target=instance) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("sent") == 1, results
    assert set(results) <= {"sent", "busy", "already sent"}
    assert run_scheduled_report(seeded.db, settings, now) == "already sent"
    assert len(discord.accepted()) == 1
    fields = fields_of(discord.accepted()[0])
    assert fields["Kills"] != "0"
    [row] = list(ReportSent.select())
    assert (row.period_type, row.period_start) == ("weekly", week)


def test_scheduler_runs_the_report_and_survives_its_failure(seeded, discord, clean_reports):
    week = busiest_week(seeded.db)
    now = dt.datetime.combine(week + dt.timedelta(days=7), dt.time(9), tzinfo=dt.UTC)
    settings = settings_for(seeded.url, DISCORD_WEBHOOK_URL=discord.url,
                            PERSISTENCE_REPORT_SCHEDULE="0 9 * * 1")  # fmt: skip
    scheduler = Scheduler(settings, seeded.db, clock=lambda: now)
    discord.fail(400)
    result = scheduler.run_report_now()
    assert result.startswith("failed: DiscordError") and WEBHOOK_TOKEN not in result
    assert scheduler.run_now().ok  # aggregation is not held up by the report
    assert scheduler.run_report_now() == "sent"
    assert scheduler.run_report_now() == "already sent"
    assert scheduler.report_failures == 1 and len(discord.accepted()) == 1
    scheduler._arm_report()
    assert scheduler.report_next_fire == now + dt.timedelta(days=7)
