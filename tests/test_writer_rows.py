"""store.write_rows on both databases: one bad row never loses the rest of its batch."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from test_killmail import esi_mail

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.rows import InvolvementRow, involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails import parse as km


def rows_for(killmail_id: int) -> list[InvolvementRow]:
    mail = km.parse(dict(esi_mail(killmail_id=killmail_id), zkb={"totalValue": 12.345}))
    return involvement_rows(mail, TrackedSet.of_ids({90000001, 90000002}))


def test_one_bad_row_never_loses_the_rest(db):
    rows = rows_for(1) + rows_for(2) + rows_for(3)
    naive = dataclasses.replace(rows[2], kill_time=dt.datetime(2025, 1, 1))  # refused by the column
    # NOT NULL violated in the database:
    missing = dataclasses.replace(rows[4], related_character_id=None)
    batch = [rows[0], rows[1], naive, rows[3], missing, rows[5]]
    result = write_rows(db, batch)
    assert result.rows == 6
    assert [row.killmail_id for row, _ in result.failed] == [2, 3]
    assert all(reason for _, reason in result.failed)
    stored = set(
        Involvement.select(Involvement.killmail_id, Involvement.character_role).tuples().execute(db)
    )
    assert stored == {(1, "victim"), (1, "attacker"), (2, "attacker"), (3, "attacker")}


def test_values_round_trip_through_the_driver_path(db):
    rows = rows_for(9)
    assert not write_rows(db, rows).failed
    victim = Involvement.get(Involvement.character_role == "victim")
    assert victim.total_value == Decimal("12.35")
    assert victim.kill_time == dt.datetime(2025, 11, 2, 18, 40, 11, tzinfo=dt.UTC)
    assert victim.victim_data["items"][0]["item_type_id"] == 2
    assert victim.zkb_data == {"totalValue": 12.345}
    assert victim.attacker_data is None and victim.npc is False and victim.attacker_count == 3
    attacker = Involvement.get(Involvement.character_role == "attacker")
    assert attacker.attacker_data["character_id"] == 90000002 and attacker.final_blow is True
    assert "items" not in attacker.victim_data
