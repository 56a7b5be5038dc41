"""From parsed killmails to involvement rows: one per tracked character and role.

`InvolvementRow` is what travels between the ingest modules: built here, filled by a
`RowFill` (regions and names from the universe tables, `enrichment.fill.RowFiller`),
written by `store.write_rows` (which stamps `processed_at`, the time of the write).
`RowBatch` is the one way rows are made: the plugin's writer, backfill and the library
call all add matched mails to one and take the filled rows from it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from ..db.models import ROLE_ATTACKER, ROLE_VICTIM, VALUE_NONE, VALUE_ZKB
from ..killmails.parse import Killmail, Participant
from ..redact import first_line
from .tracked import TrackedSet

log = logging.getLogger(__name__)


@dataclass(slots=True)
class InvolvementRow:
    """One row of the `killmails` table (every column but `id` and `processed_at`).

    Rows of one mail share their `zkb_data` and (attacker rows) `victim_data` objects:
    treat those as read-only. The region and name columns may be filled in place
    before the row is written."""

    killmail_id: int
    kill_time: dt.datetime
    solar_system_id: int | None
    solar_system_name: str | None
    region_id: int | None
    region_name: str | None
    total_value: Decimal | None
    character_role: str
    related_character_id: int
    related_character_name: str | None
    ship_type_id: int | None
    ship_type_name: str | None
    final_blow: bool
    solo: bool
    npc: bool
    attacker_count: int
    zkb_data: Mapping[str, Any] | None
    victim_data: Mapping[str, Any] | None
    attacker_data: Mapping[str, Any] | None
    value_source: str
    """`zkb` when `total_value` is zKillboard's, else `none` (see `db.models.VALUE_SOURCES`)."""
    repriced: bool = field(default=False, metadata={"column": False})
    """Not a column: the mail was republished repriced, so `store.write_rows` replaces a
    stored value with this row's."""

    @property
    def key(self) -> tuple[int, int, str]:
        """The involvement's identity: (killmail, character, role)."""
        return (self.killmail_id, self.related_character_id, self.character_role)


COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(InvolvementRow) if f.metadata.get("column", True)
)
"""The `killmails` columns an `InvolvementRow` carries, in field order."""

RowFill = Callable[[Sequence[InvolvementRow]], None]
"""Fills columns of rows in place before they are written (`enrichment.fill.RowFiller`)."""


def _victim_data(victim: Participant, with_items: bool) -> dict[str, Any]:
    data = dict(victim.raw)
    if not with_items:
        data.pop("items", None)
    return data


def _victim_data_to_price(victim: Participant) -> dict[str, Any]:
    """The victim's entry for attacker rows of a mail without a value: with its items,
    always under `items` (an empty list when the mail listed none), so that an entry kept
    for pricing is told apart from one stored without its items."""
    data = dict(victim.raw)
    if not isinstance(data.get("items"), list):
        data["items"] = []
    return data


def involvement_rows(mail: Killmail, tracked: TrackedSet) -> list[InvolvementRow]:
    """Rows for every tracked character on the mail: the victim, and each tracked
    attacker once (their final-blow entry if they appear more than once).

    A character's name is the mail's own, else the tracked set's. Regions are left empty
    (see `RowBatch`); rows carry no `processed_at` (see `store.write_rows`)."""
    ids = tracked.ids
    victim = mail.victim
    victim_tracked = victim.character_id is not None and victim.character_id in ids
    chosen: dict[int, Participant] = {}
    for attacker in mail.attackers:
        cid = attacker.character_id
        if cid is None or cid not in ids:
            continue
        if cid not in chosen or (attacker.final_blow and not chosen[cid].final_blow):
            chosen[cid] = attacker
    if not victim_tracked and not chosen:
        return []
    name_of = tracked.names.get
    zkb = mail.zkb
    shared = (mail.killmail_id, mail.kill_time, mail.solar_system_id, mail.solar_system_name)
    total_value = mail.total_value
    value_source = VALUE_NONE if total_value is None else VALUE_ZKB
    outcome = (bool(zkb and zkb.solo), mail.is_npc_kill, len(mail.attackers))
    zkb_data = dict(zkb.raw) if zkb else None

    def row(
        role: str, cid: int, who: Participant, victim_data: dict[str, Any], attacker: bool
    ) -> InvolvementRow:
        return InvolvementRow(
            *shared,
            None,  # region_id, filled by RowBatch.take
            None,  # region_name
            total_value,
            role,
            cid,
            who.character_name or name_of(cid),
            who.ship_type_id,
            who.ship_type_name,
            attacker and who.final_blow,
            *outcome,
            zkb_data,
            victim_data,
            dict(who.raw) if attacker else None,
            value_source,
            mail.repriced,
        )

    rows: list[InvolvementRow] = []
    if victim_tracked and victim.character_id is not None:
        with_items = _victim_data(victim, with_items=True)
        rows.append(row(ROLE_VICTIM, victim.character_id, victim, with_items, False))
    if chosen:
        # Attacker rows drop the victim's items, unless the mail has no value: then they
        # are what `enrichment.pricing` estimates the value from.
        victim_entry = (
            _victim_data(victim, with_items=False)
            if total_value is not None
            else _victim_data_to_price(victim)
        )
        rows.extend(row(ROLE_ATTACKER, cid, who, victim_entry, True) for cid, who in chosen.items())
    return rows


class RowBatch:
    """Involvement rows of matched mails, gathered for one write.

    `add()` builds a mail's rows (names from the mail, else from the tracked set it was
    matched against); `take()` fills regions and names with `fill` (the universe
    tables) and hands the rows over. A failing `fill` is logged and the rows are taken
    as they are: enrichment fills them later, nothing is lost."""

    __slots__ = ("fill", "_rows")

    def __init__(self, fill: RowFill | None = None) -> None:
        self.fill = fill
        self._rows: list[InvolvementRow] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, mail: Killmail, tracked: TrackedSet) -> int:
        """Add the mail's rows; returns how many (0 when nobody tracked is on it)."""
        rows = involvement_rows(mail, tracked)
        self._rows.extend(rows)
        return len(rows)

    def take(self) -> list[InvolvementRow]:
        """The rows gathered so far, filled; the batch is empty afterwards."""
        rows, self._rows = self._rows, []
        if rows and self.fill is not None:
            try:
                self.fill(rows)
            except Exception as exc:  # noqa: BLE001 - filling must never lose rows
                log.warning("wn-persist: rows stored without regions/names: %s", first_line(exc))
        return rows
