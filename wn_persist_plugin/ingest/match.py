"""Matching a killmail against the tracked characters: the one check every ingest path
makes (the plugin's hook, the standalone host's counters, backfill, the library call).

`involves()` is the cheap filter, fast enough for the host's thread; `match()` adds the
full parse for a mail that involves someone tracked.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from ..db.fields import to_id
from ..killmails.parse import Killmail, parse, participant_ids, unwrap
from .tracked import TrackedSet


def involves(envelope: Any, ids: Set[int]) -> bool:
    """True when a character in `ids` is on the mail (victim or attacker).

    Finds the ESI body like `unwrap()` and walks the victim and attackers through the set,
    stopping at the first hit, without building any object. Plain dicts with integer ids
    take a fast path; anything else goes through `unwrap()` + `participant_ids()`.
    Raises `MalformedKillmail` when the structure or an id it reads is unusable (the rest
    of a matched mail is validated by `parse()`).
    """
    if type(envelope) is dict:
        body = envelope.get("esi")
        if body is None:
            body = envelope.get("esi_data")
            if body is None:
                body = envelope if "package" not in envelope else None
                if body is not None and "killmail" in body:
                    body = None
        if type(body) is dict:
            victim = body.get("victim")
            attackers = body.get("attackers")
            if type(victim) is dict and type(attackers) is list:
                # The victim and the attackers are checked by two copies of the same
                # lines: a loop over chain((victim,), attackers) cost the hook ~20%.
                try:
                    cid = victim.get("character_id")
                    if cid is not None:
                        if type(cid) is not int:
                            cid = to_id(cid)
                        if cid in ids:
                            return True
                    for attacker in attackers:
                        cid = attacker.get("character_id")
                        if cid is not None:
                            if type(cid) is not int:
                                cid = to_id(cid)
                            if cid in ids:
                                return True
                    return False
                except (AttributeError, ValueError, TypeError):
                    pass  # the general path below says what is wrong
    found = unwrap(envelope)
    victim_id, attacker_ids = participant_ids(found)
    return victim_id in ids or not ids.isdisjoint(attacker_ids)


def match(envelope: Any, tracked: TrackedSet) -> Killmail | None:
    """The parsed mail when a tracked character is on it, else None.

    Raises `MalformedKillmail` when the mail cannot be read (whether or not it involves
    anyone tracked, as far as `involves()` had to read it)."""
    if not involves(envelope, tracked.ids):
        return None
    return parse(envelope)
