"""Killmail parsing: every envelope a host may hand over becomes one typed `Killmail`.

Envelopes understood (see docs/killmails.md):
- zKillboard R2Z2 objects `{"killmail_id", "hash", "esi": {...}, "zkb": {...}}`
- RedisQ packages `{"package": {"killID", "killmail": {...}, "zkb"}}` (and the bare
  `{"killID", "killmail", "zkb"}` inside them)
- ESI killmails, with or without `zkb` merged in (zKillboard API arrays, EVE Ref archives)
- wanderer-kills mails (`kill_time`, `system_id`, names inline)
- WandererNotifier's struct `{"killmail_id", "zkb", "esi_data": {...}}`

`unwrap()` is cheap and only finds the ESI body and the zkb block; `participant_ids()`
walks the ids (matching against the tracked set is `ingest.match`); `parse()` validates
everything and builds the typed value.
Bad input raises `MalformedKillmail`, which carries the killmail id when one was found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from ..db.fields import MAX_ID, to_id, to_isk
from ..errors import MalformedKillmail


class Participant(NamedTuple):
    """The victim or one attacker. `raw` is the participant's dict as received.

    A NamedTuple rather than a frozen dataclass: a mail may have thousands of attackers
    and a frozen dataclass took 2.8 us each to build (a NamedTuple ~0.4 us)."""

    character_id: int | None
    character_name: str | None
    corporation_id: int | None
    corporation_name: str | None
    alliance_id: int | None
    alliance_name: str | None
    faction_id: int | None
    ship_type_id: int | None
    ship_type_name: str | None
    weapon_type_id: int | None
    damage: int
    final_blow: bool
    raw: Mapping[str, Any]

    @property
    def is_player(self) -> bool:
        return self.character_id is not None


@dataclass(frozen=True, slots=True)
class Zkb:
    """zKillboard's block. Values are exact ISK (`None` when absent)."""

    total_value: Decimal | None
    fitted_value: Decimal | None
    dropped_value: Decimal | None
    destroyed_value: Decimal | None
    points: int | None
    npc: bool
    solo: bool
    awox: bool
    location_id: int | None
    labels: tuple[str, ...]
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Killmail:
    killmail_id: int
    hash: str | None
    kill_time: dt.datetime
    solar_system_id: int | None
    solar_system_name: str | None
    victim: Participant
    attackers: tuple[Participant, ...]
    zkb: Zkb | None
    zkb_warning: str | None = None
    """Set when a zkb part was present but unusable (then `zkb` is None)."""
    repriced: bool = False
    """A republication after zKillboard repriced the mail (R2Z2's `sequence_updated`):
    its values replace the stored ones."""

    @property
    def total_value(self) -> Decimal | None:
        return self.zkb.total_value if self.zkb else None

    @property
    def is_npc_kill(self) -> bool:
        """No attacker was a player character."""
        return not any(a.character_id is not None for a in self.attackers)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The ESI body and zkb part found in an envelope, not yet validated."""

    body: Mapping[str, Any]
    zkb: Any
    killmail_id: Any
    hash: Any
    repriced: bool = False
    """R2Z2 republished it with `sequence_updated` (new zkb values)."""


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def unwrap(envelope: Any) -> Envelope:
    """Find the ESI body and zkb block in any supported envelope (no validation)."""
    if not isinstance(envelope, Mapping):
        raise MalformedKillmail(f"expected a mapping, got {type(envelope).__name__}")
    package = envelope.get("package")
    if isinstance(package, Mapping):
        envelope = package
    elif "package" in envelope and package is None:
        raise MalformedKillmail("empty RedisQ package")
    killmail_id = _first(envelope, "killmail_id", "killID")
    repriced = bool(envelope.get("sequence_updated"))
    for key in ("esi", "esi_data", "killmail"):
        if key in envelope:
            body = envelope[key]
            if not isinstance(body, Mapping):
                raise MalformedKillmail(
                    f"{key!r} is {type(body).__name__}, not a mapping", maybe_id(killmail_id)
                )
            zkb = envelope.get("zkb", body.get("zkb"))
            killmail_id = killmail_id if killmail_id is not None else body.get("killmail_id")
            hash_ = _first(envelope, "hash", "killmail_hash") or _first(
                body, "killmail_hash", "hash"
            )
            return Envelope(body, zkb, killmail_id, hash_, repriced)
    hash_ = _first(envelope, "hash", "killmail_hash")
    zkb = envelope.get("zkb")
    if hash_ is None and isinstance(zkb, Mapping):
        hash_ = zkb.get("hash")
    return Envelope(envelope, zkb, killmail_id, hash_, repriced)


def maybe_id(value: Any) -> int | None:
    """`value` as an id (see `fields.to_id`), or None when it is not one."""
    try:
        return _int(value)
    except (TypeError, ValueError):
        return None


_int = to_id
"""Ids in killmails: see `fields.to_id`."""


def participant_ids(envelope: Envelope) -> tuple[int | None, list[int]]:
    """The victim's character id and the attackers' character ids, for cheap filtering.

    Raises `MalformedKillmail` when the structure or an id is unusable.
    """
    body = envelope.body
    victim = body.get("victim")
    attackers = body.get("attackers")
    if not isinstance(victim, Mapping) or not isinstance(attackers, list):
        raise _structure_error(body, envelope.killmail_id)
    try:
        raw_victim = victim.get("character_id")
        victim_id = None if raw_victim is None else _int(raw_victim)
        ids = []
        for attacker in attackers:
            raw = attacker.get("character_id")
            if raw is not None:
                ids.append(raw if type(raw) is int else _int(raw))
    except (AttributeError, ValueError, TypeError) as exc:
        raise MalformedKillmail(
            f"bad character id: {exc}", maybe_id(envelope.killmail_id)
        ) from None
    return victim_id, ids


def killmail_id_of(envelope: Any) -> int | None:
    """The killmail id of any envelope when one can be found (for log lines)."""
    try:
        found = unwrap(envelope)
    except MalformedKillmail as exc:
        return exc.killmail_id
    raw = found.killmail_id if found.killmail_id is not None else found.body.get("killmail_id")
    return maybe_id(raw)


def _structure_error(body: Mapping[str, Any], killmail_id: Any) -> MalformedKillmail:
    victim = body.get("victim")
    if victim is None:
        reason = "no victim"
    elif not isinstance(victim, Mapping):
        reason = f"victim is {type(victim).__name__}, not a mapping"
    else:
        reason = f"attackers is {type(body.get('attackers')).__name__}, not a list"
    return MalformedKillmail(reason, maybe_id(killmail_id))


def parse_time(value: Any) -> dt.datetime:
    """ISO 8601 (`2025-11-02T18:40:11Z`, offsets, fractions) or `2008.01.06 00:44:00`,
    as an aware UTC datetime. Times without an offset are UTC (EVE time)."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        if len(text) >= 10 and text[4] == "." and text[7] == ".":
            text = f"{text[:4]}-{text[5:7]}-{text[8:]}"
        parsed = dt.datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a time: {value!r}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _opt_int(mapping: Mapping[str, Any], *keys: str) -> int | None:
    value = _first(mapping, *keys)
    return None if value is None else _int(value)


def _opt_str(mapping: Mapping[str, Any], *keys: str) -> str | None:
    value = _first(mapping, *keys)
    return None if value is None else str(value)


def _i(value: Any) -> int | None:
    """An optional id (fast path for the ints almost every mail carries)."""
    if value is None or (type(value) is int and 0 <= value <= MAX_ID):
        return value
    return _int(value)


def _s(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return str(value)


def _participant(raw: Any, victim: bool) -> Participant:
    if not isinstance(raw, Mapping):
        kind = "victim" if victim else "attacker"
        raise ValueError(f"{kind} is {type(raw).__name__}, not a mapping")
    get = raw.get
    damage = get("damage_taken" if victim else "damage_done") or 0
    ship_name = get("ship_type_name")
    return Participant(
        _i(get("character_id")),
        _s(get("character_name")),
        _i(get("corporation_id")),
        _s(get("corporation_name")),
        _i(get("alliance_id")),
        _s(get("alliance_name")),
        _i(get("faction_id")),
        _i(get("ship_type_id")),
        _s(ship_name if ship_name is not None else get("ship_name")),
        _i(get("weapon_type_id")),
        damage if type(damage) is int else _int(damage),
        bool(get("final_blow", False)),
        raw,
    )


MAX_ISK = Decimal("1e15")
"""The largest ISK value taken as real (1,000 trillion; the most expensive kills so far are
a few trillion). A larger one is refused like a negative or infinite one."""


def _value(raw: Mapping[str, Any], key: str) -> Decimal | None:
    """An ISK value of the zkb block; negative, NaN, infinite and implausibly large
    (> `MAX_ISK`) values are refused."""
    value = raw.get(key)
    try:
        amount = to_isk(value)
    except ValueError:
        amount = Decimal("NaN")
    if amount is not None and (not amount.is_finite() or amount < 0 or amount > MAX_ISK):
        raise ValueError(f"{key} {value!r} is not a plausible ISK value")
    return amount


def _zkb(raw: Mapping[str, Any]) -> Zkb:
    labels = raw.get("labels") or ()
    return Zkb(
        total_value=_value(raw, "totalValue"),
        fitted_value=_value(raw, "fittedValue"),
        dropped_value=_value(raw, "droppedValue"),
        destroyed_value=_value(raw, "destroyedValue"),
        points=_opt_int(raw, "points"),
        npc=bool(raw.get("npc", False)),
        solo=bool(raw.get("solo", False)),
        awox=bool(raw.get("awox", False)),
        location_id=_opt_int(raw, "locationID"),
        labels=tuple(str(label) for label in labels) if isinstance(labels, list) else (),
        raw=raw,
    )


def zkb_block(raw: Mapping[str, Any]) -> Zkb:
    """A zkb block on its own (as zKillboard's APIs return it beside a killmail id);
    raises ValueError or TypeError when it is unusable."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"zkb is {type(raw).__name__}, not a mapping")
    return _zkb(raw)


def parse(envelope: Any) -> Killmail:
    """Validate any supported envelope and return the typed `Killmail`."""
    found = envelope if isinstance(envelope, Envelope) else unwrap(envelope)
    body = found.body
    raw_id = found.killmail_id if found.killmail_id is not None else body.get("killmail_id")
    killmail_id = maybe_id(raw_id)
    if killmail_id is None:
        raise MalformedKillmail(f"no usable killmail id ({raw_id!r})")
    victim = body.get("victim")
    attackers = body.get("attackers")
    if not isinstance(victim, Mapping) or not isinstance(attackers, list):
        raise _structure_error(body, killmail_id)
    try:
        kill_time = parse_time(_first(body, "killmail_time", "kill_time"))
    except (ValueError, TypeError) as exc:
        raise MalformedKillmail(f"unparsable kill time: {exc}", killmail_id) from None
    try:
        parsed_victim = _participant(victim, victim=True)
        parsed_attackers = tuple(_participant(a, victim=False) for a in attackers)
        system_id = _opt_int(body, "solar_system_id", "system_id")
    except (ValueError, TypeError) as exc:
        raise MalformedKillmail(str(exc), killmail_id) from None

    zkb = None
    warning = None
    if isinstance(found.zkb, Mapping):
        try:
            zkb = _zkb(found.zkb)
        except (ValueError, TypeError) as exc:
            warning = f"unusable zkb block ({exc}); stored without a value"
    elif found.zkb is not None:
        warning = f"zkb is {type(found.zkb).__name__}, not a mapping; stored without a value"

    hash_ = found.hash if isinstance(found.hash, str) else None
    if hash_ is None and zkb is not None and isinstance(zkb.raw.get("hash"), str):
        hash_ = zkb.raw["hash"]
    return Killmail(
        killmail_id=killmail_id,
        hash=hash_,
        kill_time=kill_time,
        solar_system_id=system_id,
        solar_system_name=_opt_str(body, "solar_system_name", "system_name"),
        victim=parsed_victim,
        attackers=parsed_attackers,
        zkb=zkb,
        zkb_warning=warning,
        repriced=found.repriced and zkb is not None,
    )
