"""From a parsed killmail to its involvement rows: one per tracked character and role.

A row is a plain dict keyed by the `killmails` column names, ready for `store.write_rows`
(which adds `processed_at`, the time of the write).
Regions are left empty here; enrichment fills `region_id` / `region_name` later.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..db.models import ROLE_ATTACKER, ROLE_VICTIM
from ..killmails.parse import Killmail, Participant

NameLookup = Callable[[int], str | None]


def _victim_data(victim: Participant, with_items: bool) -> dict[str, Any]:
    data = dict(victim.raw)
    if not with_items:
        data.pop("items", None)
    return data


def _row(
    shared: dict[str, Any],
    who: Participant,
    role: str,
    name_of: NameLookup | None,
    victim_data: dict[str, Any],
) -> dict[str, Any]:
    character_id = who.character_id
    assert character_id is not None
    name = who.character_name or (name_of(character_id) if name_of else None)
    row = dict(shared)
    row["character_role"] = role
    row["related_character_id"] = character_id
    row["related_character_name"] = name
    row["ship_type_id"] = who.ship_type_id
    row["ship_type_name"] = who.ship_type_name
    row["final_blow"] = role == ROLE_ATTACKER and who.final_blow
    row["victim_data"] = victim_data
    row["attacker_data"] = dict(who.raw) if role == ROLE_ATTACKER else None
    return row


def involvement_rows(
    mail: Killmail,
    tracked: Collection[int],
    name_of: NameLookup | None = None,
) -> list[dict[str, Any]]:
    """Rows for every tracked character on the mail: the victim, and each tracked
    attacker once (their final-blow entry if they appear more than once).

    Rows carry no `processed_at`: `store.write_rows` stamps it when it writes them.
    The rows of one mail share their `zkb_data` and (attacker rows) `victim_data`
    objects: treat them as read-only."""
    victim = mail.victim
    victim_tracked = victim.character_id is not None and victim.character_id in tracked
    chosen: dict[int, Participant] = {}
    for attacker in mail.attackers:
        cid = attacker.character_id
        if cid is None or cid not in tracked:
            continue
        if cid not in chosen or (attacker.final_blow and not chosen[cid].final_blow):
            chosen[cid] = attacker
    if not victim_tracked and not chosen:
        return []
    shared = {
        "killmail_id": mail.killmail_id,
        "kill_time": mail.kill_time,
        "solar_system_id": mail.solar_system_id,
        "solar_system_name": mail.solar_system_name,
        # Filled by region enrichment (see writer.Writer.enrich); empty until then.
        "region_id": None,
        "region_name": None,
        "total_value": mail.total_value,
        "solo": bool(mail.zkb and mail.zkb.solo),
        "npc": mail.is_npc_kill,
        "attacker_count": len(mail.attackers),
        "zkb_data": dict(mail.zkb.raw) if mail.zkb else None,
    }
    rows: list[dict[str, Any]] = []
    if victim_tracked:
        rows.append(
            _row(shared, victim, ROLE_VICTIM, name_of, _victim_data(victim, with_items=True))
        )
    if chosen:
        without_items = _victim_data(victim, with_items=False)
        rows.extend(_row(shared, a, ROLE_ATTACKER, name_of, without_items) for a in chosen.values())
    return rows


def tracked_names(characters: Mapping[int, str | None]) -> NameLookup:
    """A name lookup over a mapping of tracked character id -> name."""
    return characters.get
