"""Tracked characters: the host's list normalized, stored, and held in memory for matching.

The host hands over entries of two shapes (see `hookspecs.on_tracked_characters_updated`):
Wanderer map API entries (`{"tracked": true, "character": {"eve_id": "2123019188", ...}}`)
and plain dicts (`{"character_id": 2123019188, "character_name": ...}`). Ids arrive as
strings or integers and are compared as integers.

`TrackedSet` is an immutable snapshot (a frozenset of ids plus names); the plugin swaps
its reference in one assignment, so the hook thread always sees a consistent set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from peewee import EXCLUDED, Database, chunked, fn

from ..db.connect import write_transaction
from ..db.fields import to_id
from ..db.models import TrackedCharacter

log = logging.getLogger(__name__)

UPSERT_BATCH = 500


@dataclass(frozen=True, slots=True)
class TrackedEntry:
    """One tracked character as the host described it."""

    character_id: int
    character_name: str | None = None
    corporation_id: int | None = None
    corporation_name: str | None = None
    corporation_ticker: str | None = None
    alliance_id: int | None = None
    alliance_name: str | None = None
    alliance_ticker: str | None = None


@dataclass(frozen=True)
class TrackedSet:
    """An immutable snapshot of the tracked characters: ids for matching, names for rows."""

    ids: frozenset[int] = frozenset()
    names: Mapping[int, str | None] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, entries: Iterable[TrackedEntry]) -> TrackedSet:
        names = {e.character_id: e.character_name for e in entries}
        return cls(frozenset(names), MappingProxyType(names))

    @classmethod
    def of_ids(cls, ids: Iterable[int] | Mapping[int, str | None]) -> TrackedSet:
        """From character ids (ints or digit strings), or a mapping of id -> name."""
        if isinstance(ids, Mapping):
            names = {to_id(k): v for k, v in ids.items()}
        else:
            names = {to_id(i): None for i in ids}
        return cls(frozenset(names), MappingProxyType(names))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Normalized:
    """The result of normalizing a host list: the usable entries and what was skipped."""

    entries: list[TrackedEntry]
    untracked: int = 0
    """Entries marked `tracked: false`."""
    invalid: list[str] = field(default_factory=list)
    """One reason per entry that could not be used."""


def _id(value: Any) -> int:
    if value is None:
        raise ValueError(f"not an id: {value!r}")
    result = to_id(value)
    if result == 0:
        raise ValueError(f"not an id (1..2**63-1): {value!r}")
    return result


def _opt_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return _id(value)
    except ValueError:
        return None


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def normalize_entry(entry: Any) -> TrackedEntry | None:
    """One host entry as a `TrackedEntry`; None when it is marked `tracked: false`.

    Raises `ValueError` when the entry has no usable character id.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"entry is {type(entry).__name__}, not a mapping")
    if entry.get("tracked", True) is False:
        return None
    character = entry.get("character")
    if isinstance(character, Mapping):
        # Wanderer map API: the EVE id is character.eve_id; the top-level character_id is
        # the map's own UUID and must not be used.
        raw_id = character.get("eve_id", character.get("character_id"))
        source = character
        name = source.get("name", source.get("character_name"))
    else:
        raw_id = entry.get("character_id", entry.get("eve_id"))
        source = entry
        name = source.get("character_name", source.get("name"))
    try:
        character_id = _id(raw_id)
    except ValueError:
        raise ValueError(f"no usable character id ({raw_id!r})") from None
    return TrackedEntry(
        character_id=character_id,
        character_name=_opt_str(name),
        corporation_id=_opt_id(source.get("corporation_id")),
        corporation_name=_opt_str(source.get("corporation_name")),
        corporation_ticker=_opt_str(source.get("corporation_ticker")),
        alliance_id=_opt_id(source.get("alliance_id")),
        alliance_name=_opt_str(source.get("alliance_name")),
        alliance_ticker=_opt_str(source.get("alliance_ticker")),
    )


def normalize(characters: Any) -> Normalized:
    """Normalize the host's list; never raises. A character listed twice keeps the entry
    that carries the most details (the later one on a tie)."""
    result = Normalized(entries=[])
    if isinstance(characters, Mapping) or not isinstance(characters, Iterable):
        result.invalid.append(f"expected a list of entries, got {type(characters).__name__}")
        return result
    chosen: dict[int, TrackedEntry] = {}
    for position, entry in enumerate(characters):
        try:
            normalized = normalize_entry(entry)
        except ValueError as exc:
            result.invalid.append(f"entry {position}: {exc}")
            continue
        if normalized is None:
            result.untracked += 1
            continue
        previous = chosen.get(normalized.character_id)
        if previous is None or _details(normalized) >= _details(previous):
            chosen[normalized.character_id] = normalized
    result.entries = list(chosen.values())
    return result


def _details(entry: TrackedEntry) -> int:
    return sum(1 for value in (entry.character_name, entry.corporation_id) if value is not None)


def store_tracked(
    db: Database, entries: Iterable[TrackedEntry], now: dt.datetime | None = None
) -> int:
    """Make `tracked_characters` match the host's current list, in one transaction.

    Listed characters are inserted or updated (`tracked` true; `tracked_since` is kept for
    characters already known, and known details are kept when the host sends none);
    characters no longer listed get `tracked` false. Returns the number listed.
    """
    now = now or dt.datetime.now(dt.UTC)
    rows = [
        {
            "character_id": e.character_id,
            "character_name": e.character_name,
            "corporation_id": e.corporation_id,
            "corporation_name": e.corporation_name,
            "corporation_ticker": e.corporation_ticker,
            "alliance_id": e.alliance_id,
            "alliance_name": e.alliance_name,
            "alliance_ticker": e.alliance_ticker,
            "tracked": True,
            "tracked_since": now,
            "updated_at": now,
        }
        for e in entries
    ]
    T = TrackedCharacter
    keep = {
        T.character_name: fn.COALESCE(EXCLUDED.character_name, T.character_name),
        T.corporation_id: fn.COALESCE(EXCLUDED.corporation_id, T.corporation_id),
        T.corporation_name: fn.COALESCE(EXCLUDED.corporation_name, T.corporation_name),
        T.corporation_ticker: fn.COALESCE(EXCLUDED.corporation_ticker, T.corporation_ticker),
        T.alliance_id: fn.COALESCE(EXCLUDED.alliance_id, T.alliance_id),
        T.alliance_name: fn.COALESCE(EXCLUDED.alliance_name, T.alliance_name),
        T.alliance_ticker: fn.COALESCE(EXCLUDED.alliance_ticker, T.alliance_ticker),
        T.tracked: True,
        T.updated_at: EXCLUDED.updated_at,
    }
    with write_transaction(db):
        for batch in chunked(rows, UPSERT_BATCH):
            (
                T.insert_many(batch)
                .on_conflict(conflict_target=[T.character_id], update=keep)
                .execute(db)
            )
        # Every listed character now carries updated_at == now: the rest are no longer
        # tracked. One statement, whatever the size of the list.
        T.update(tracked=False, updated_at=now).where(
            T.tracked & ((T.updated_at != now) | T.updated_at.is_null())
        ).execute(db)
    return len(rows)


def load_tracked(db: Database, extra: Iterable[int] = ()) -> TrackedSet:
    """The characters currently tracked according to the table, plus the `extra` ids
    (e.g. a backfill's `--track`; their names come from the table when it has them)."""
    T = TrackedCharacter
    rows = T.select(T.character_id, T.character_name).where(T.tracked).tuples()
    names: dict[int, str | None] = {int(cid): name for cid, name in rows.execute(db)}
    for character_id in extra:
        names.setdefault(to_id(character_id), None)
    return TrackedSet(frozenset(names), MappingProxyType(names))
