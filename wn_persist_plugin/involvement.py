"""From a parsed killmail to its involvement rows: one per tracked character and role.

A row is a plain dict keyed by the `killmails` column names, ready for `insert_many`.
Regions are left empty here; enrichment fills `region_id` / `region_name` later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .killmail import Killmail, Participant
from .models import ROLE_ATTACKER, ROLE_VICTIM

NameLookup = Callable[[int], str | None]


def _victim_data(victim: Participant, with_items: bool) -> dict[str, Any]:
    data = dict(victim.raw)
    if not with_items:
        data.pop("items", None)
    return data


def _row(
    mail: Killmail,
    who: Participant,
    role: str,
    name_of: NameLookup | None,
    now: dt.datetime,
) -> dict[str, Any]:
    character_id = who.character_id
    assert character_id is not None
    name = who.character_name or (name_of(character_id) if name_of else None)
    return {
        "killmail_id": mail.killmail_id,
        "kill_time": mail.kill_time,
        "solar_system_id": mail.solar_system_id,
        "solar_system_name": mail.solar_system_name,
        "region_id": None,
        "region_name": None,
        "total_value": mail.total_value,
        "character_role": role,
        "related_character_id": character_id,
        "related_character_name": name,
        "ship_type_id": who.ship_type_id,
        "ship_type_name": who.ship_type_name,
        "final_blow": role == ROLE_ATTACKER and who.final_blow,
        "solo": bool(mail.zkb and mail.zkb.solo),
        "npc": mail.is_npc_kill,
        "attacker_count": len(mail.attackers),
        "zkb_data": dict(mail.zkb.raw) if mail.zkb else None,
        "victim_data": _victim_data(mail.victim, with_items=role == ROLE_VICTIM),
        "attacker_data": dict(who.raw) if role == ROLE_ATTACKER else None,
        "processed_at": now,
    }


def involvement_rows(
    mail: Killmail,
    tracked: Collection[int],
    name_of: NameLookup | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows for every tracked character on the mail: the victim, and each tracked
    attacker once (their final-blow entry if they appear more than once)."""
    now = now or dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    victim = mail.victim
    if victim.character_id is not None and victim.character_id in tracked:
        rows.append(_row(mail, victim, ROLE_VICTIM, name_of, now))
    chosen: dict[int, Participant] = {}
    for attacker in mail.attackers:
        cid = attacker.character_id
        if cid is None or cid not in tracked:
            continue
        if cid not in chosen or (attacker.final_blow and not chosen[cid].final_blow):
            chosen[cid] = attacker
    rows.extend(_row(mail, a, ROLE_ATTACKER, name_of, now) for a in chosen.values())
    return rows


def tracked_names(characters: Mapping[int, str | None]) -> NameLookup:
    """A name lookup over a mapping of tracked character id -> name."""
    return characters.get
