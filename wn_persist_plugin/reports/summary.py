"""One period's report: the group's figures (each mail once), the top five pilots, the
most expensive kill, as a Discord embed; the leaderboard chart goes with it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import Database

from ..charts.isk import format_isk
from ..statistics import charts_data, group, history
from ..statistics.aggregation import period_bounds

TOP_PILOTS = 5
EMBED_COLOR = 0x5865F2
ATTACHMENT = "leaderboard.png"


def last_complete_period(period: str, today: dt.date) -> dt.date:
    """The first day of the last period of that type that ended before `today`."""
    history.check_period(period)
    current = period_bounds(period, today)[0]
    return period_bounds(period, current - dt.timedelta(days=1))[0]


@dataclass(frozen=True)
class Summary:
    period: str
    start: dt.date
    end: dt.date
    totals: dict[str, Any]
    """`group.group_totals` over the period's days."""
    top_pilots: list[dict[str, Any]]
    """The stored leaderboard by kills, at most `TOP_PILOTS`."""
    best_kill: dict[str, Any] | None


def build_summary(db: Database, period: str, start: dt.date) -> Summary:
    """The figures of the period starting on `start`."""
    history.check_period(period)
    first, last = period_bounds(period, start)
    return Summary(
        period,
        first,
        last,
        group.group_totals(db, first, last),
        history.leaderboard(db, period, first, "kills", TOP_PILOTS)["items"],
        charts_data.most_expensive_kill(db, first, last),
    )


def _isk(value: Decimal) -> str:
    return f"{format_isk(value)} ISK"


def embed(summary: Summary) -> dict[str, Any]:
    """The summary as one Discord embed (within Discord's field limits)."""
    totals = summary.totals
    efficiency = totals["efficiency"]
    pilots = [
        f"{rank}. {item['character_name'] or item['character_id']}: {item['kills']} kills, "
        f"{_isk(item['isk_destroyed'])}"
        for rank, item in enumerate(summary.top_pilots, 1)
    ]
    best = summary.best_kill
    best_text = "none"
    if best is not None:
        what = best["ship"] or f"killmail {best['killmail_id']}"
        best_text = f"[{what}: {_isk(best['total_value'])}]({best['zkillboard_url']})"
        if best["system"]:
            best_text += f" in {best['system']}"
    fields = [
        ("Kills", f"{totals['kills']:,}"),
        ("Losses", f"{totals['deaths']:,}"),
        ("Efficiency", "n/a" if efficiency is None else f"{efficiency:.1f}%"),
        ("ISK destroyed", _isk(totals["isk_destroyed"])),
        ("ISK lost", _isk(totals["isk_lost"])),
        ("Solo kills", f"{totals['solo_kills']:,}"),
        ("Top pilots", "\n".join(pilots) or "none"),
        ("Most expensive kill", best_text),
    ]
    return {
        "title": f"{summary.period.capitalize()} report: {summary.start} to {summary.end}"[:256],
        "color": EMBED_COLOR,
        "fields": [
            {
                "name": name,
                "value": value[:1024],
                "inline": name not in ("Top pilots", "Most expensive kill"),
            }
            for name, value in fields
        ],  # fmt: skip
        "image": {"url": f"attachment://{ATTACHMENT}"},
        "footer": {"text": "wn-persist: each mail counted once for the group (UTC)"},
    }


def payload(summary: Summary) -> dict[str, Any]:
    """The webhook's `payload_json`: the embed, its attachment, no mentions."""
    return {
        "embeds": [embed(summary)],
        "attachments": [{"id": 0, "filename": ATTACHMENT}],
        "allowed_mentions": {"parse": []},
    }
