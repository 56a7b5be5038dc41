"""An independent reference for the statistics: plain Python over the raw killmails.

It reads the envelopes' JSON itself (no `killmail.parse`, no `involvement`, no SQL) and
credits the way zKillboard does: every tracked attacker gets the kill and the full value,
a character counts once per mail and role. The tests compare it with the database.

Also: small builders for synthetic killmails and for storing mails the way the pipeline
does (`rows.involvement_rows` + `store.write_rows`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Key = tuple[str, dt.date, int]  # (period_type, period_start, character_id)


def _period_starts(day: dt.date) -> dict[str, dt.date]:
    return {
        "daily": day,
        "weekly": day - dt.timedelta(days=day.isoweekday() - 1),
        "monthly": dt.date(day.year, day.month, 1),
    }


def _period_end(period_type: str, start: dt.date) -> dt.date:
    if period_type == "daily":
        return start
    if period_type == "weekly":
        return start + dt.timedelta(days=6)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return dt.date(year, month, 1) - dt.timedelta(days=1)


def _utc_day(text: str) -> dt.date:
    text = text.strip()
    if "." in text[:10]:  # 2008.01.06 00:44:00
        text = text[:10].replace(".", "-") + text[10:]
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.date()


def _value(zkb: Mapping[str, Any] | None) -> Decimal:
    if not zkb or zkb.get("totalValue") is None:
        return Decimal("0.00")
    return Decimal(repr(float(zkb["totalValue"]))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def reference_statistics(
    envelopes: Iterable[Mapping[str, Any]],
    tracked: set[int],
    *,
    tracked_names: Mapping[int, str] | None = None,
    row_names: Callable[[int], str | None] = lambda cid: None,
    region_of: Callable[[int | None], int | None] = lambda system: None,
) -> dict[Key, dict[str, Any]]:
    """Statistics rows keyed by (period_type, period_start, character_id), as the
    database should hold them. Envelopes are R2Z2 objects `{"esi": ..., "zkb": ...}`."""
    acc: dict[Key, dict[str, Any]] = {}
    mails_in_region: dict[Key, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    tracked_names = tracked_names or {}

    def bucket(key: Key) -> dict[str, Any]:
        if key not in acc:
            acc[key] = {
                "period_end": _period_end(key[0], key[1]),
                "kills_count": 0,
                "deaths_count": 0,
                "isk_destroyed": Decimal("0.00"),
                "isk_lost": Decimal("0.00"),
                "solo_kills": 0,
                "final_blows": 0,
                "npc_deaths": 0,
                "ship_usage": Counter(),
            }
        return acc[key]

    for envelope in envelopes:
        esi = envelope["esi"]
        zkb = envelope.get("zkb")
        kill_id = int(envelope.get("killmail_id") or esi["killmail_id"])
        day = _utc_day(esi["killmail_time"])
        value = _value(zkb)
        solo = bool(zkb and zkb.get("solo"))
        attackers = esi.get("attackers") or []
        npc = not any(a.get("character_id") is not None for a in attackers)
        region = region_of(esi.get("solar_system_id"))
        region_key = "unknown" if region is None else str(region)

        credits: list[tuple[int, str, int | None, bool]] = []  # (character, role, ship, fb)
        victim = esi["victim"]
        if victim.get("character_id") is not None and int(victim["character_id"]) in tracked:
            credits.append(
                (int(victim["character_id"]), "victim", victim.get("ship_type_id"), False)
            )
        seen: dict[int, dict[str, Any]] = {}
        for attacker in attackers:
            cid = attacker.get("character_id")
            if cid is None or int(cid) not in tracked:
                continue
            cid = int(cid)
            # the attacker's own entry: the first, or their final-blow entry
            if cid not in seen or (attacker.get("final_blow") and not seen[cid].get("final_blow")):
                seen[cid] = attacker
        for cid, entry in seen.items():
            credits.append(
                (cid, "attacker", entry.get("ship_type_id"), bool(entry.get("final_blow")))
            )

        for cid, role, ship, final_blow in credits:
            for period_type, start in _period_starts(day).items():
                key = (period_type, start, cid)
                row = bucket(key)
                if role == "attacker":
                    row["kills_count"] += 1
                    row["isk_destroyed"] += value
                    row["solo_kills"] += solo
                    row["final_blows"] += final_blow
                else:
                    row["deaths_count"] += 1
                    row["isk_lost"] += value
                    row["npc_deaths"] += npc
                if ship is not None:
                    row["ship_usage"][str(int(ship))] += 1
                mails_in_region[key][region_key].add(kill_id)

    for key, row in acc.items():
        row["ship_usage"] = dict(row["ship_usage"])
        row["region_activity"] = {r: len(ids) for r, ids in mails_in_region[key].items()}
        cid = key[2]
        row["character_name"] = tracked_names.get(cid) or row_names(cid)
    return acc


def database_statistics(model: Any) -> dict[Key, dict[str, Any]]:
    """The `killmail_statistics` rows in the same shape as `reference_statistics`."""
    fields = (
        "period_end",
        "kills_count",
        "deaths_count",
        "isk_destroyed",
        "isk_lost",
        "solo_kills",
        "final_blows",
        "npc_deaths",
        "ship_usage",
        "region_activity",
        "character_name",
    )
    return {
        (s.period_type, s.period_start, s.character_id): {f: getattr(s, f) for f in fields}
        for s in model.select()
    }


# --- building test data ------------------------------------------------------------------


def envelope(
    killmail_id: int,
    when: str,
    *,
    victim: int | None = None,
    attackers: Iterable[int | None] = (),
    value: str | None = "1000.00",
    solo: bool = False,
    system: int = 30000142,
    victim_ship: int = 587,
    attacker_ship: int = 11999,
) -> dict[str, Any]:
    """A synthetic R2Z2 envelope; the first attacker lands the final blow."""
    esi = {
        "killmail_id": killmail_id,
        "killmail_time": when,
        "solar_system_id": system,
        "victim": {"ship_type_id": victim_ship, "damage_taken": 100},
        "attackers": [
            {
                **({"character_id": a} if a is not None else {}),
                "ship_type_id": attacker_ship,
                "damage_done": 10,
                "final_blow": i == 0,
                "security_status": 0.0,
            }
            for i, a in enumerate(attackers)
        ],
    }
    if victim is not None:
        esi["victim"]["character_id"] = victim
    zkb = None
    if value is not None:
        zkb = {"hash": "x", "totalValue": float(value), "solo": solo, "npc": False, "points": 1}
    return {"killmail_id": killmail_id, "hash": "x", "esi": esi, "zkb": zkb}


def store_envelopes(
    db: Any,
    envelopes: Iterable[Mapping[str, Any]],
    tracked: set[int],
    *,
    processed_at: dt.datetime | None = None,
    name_of: Callable[[int], str | None] | None = None,
) -> int:
    """Store mails as the pipeline does; returns the number of involvement rows."""
    from wn_persist_plugin.ingest import rows as involvement
    from wn_persist_plugin.ingest import store
    from wn_persist_plugin.ingest.tracked import TrackedSet
    from wn_persist_plugin.killmails import parse as killmail

    characters = TrackedSet.of_ids({cid: name_of(cid) if name_of else None for cid in tracked})
    rows: list[involvement.InvolvementRow] = []
    for raw in envelopes:
        mail = killmail.parse(raw)
        rows.extend(involvement.involvement_rows(mail, characters))
    result = store.write_rows(db, rows, now=processed_at)
    assert not result.failed, result.failed[:3]
    return len(rows)
