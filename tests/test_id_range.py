"""Ids beyond what a 64-bit column holds are bad input: counted as malformed or invalid,
never a failure of the other mails of a batch or of the rest of the tracked list."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from test_killmail import ZKB, esi_mail

from wn_persist_plugin.db.models import Involvement, TrackedCharacter
from wn_persist_plugin.ingest.rows import involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedEntry, TrackedSet, normalize, store_tracked
from wn_persist_plugin.ingest.writer import Writer
from wn_persist_plugin.killmails import parse as km

TRACKED = 90000002


def envelope(killmail_id: int) -> dict:
    return {
        "killmail_id": killmail_id,
        "hash": "h",
        "esi": esi_mail(killmail_id=killmail_id),
        "zkb": dict(ZKB),
    }


@pytest.mark.parametrize("value", [2**63, str(2**64), -5])
def test_parse_refuses_an_id_out_of_range(value):
    mail = envelope(7)
    mail["esi"]["attackers"][0]["ship_type_id"] = value
    with pytest.raises(km.MalformedKillmail) as caught:
        km.parse(mail)
    assert caught.value.killmail_id == 7
    assert str(abs(int(value))) in str(caught.value)


def test_largest_64_bit_id_is_accepted():
    mail = envelope(7)
    mail["esi"]["attackers"][0]["ship_type_id"] = 2**63 - 1
    assert km.parse(mail).attackers[0].ship_type_id == 2**63 - 1


def test_killmail_id_out_of_range_is_malformed():
    with pytest.raises(km.MalformedKillmail, match="no usable killmail id"):
        km.parse(envelope(2**63))


def test_one_out_of_range_mail_never_loses_its_writer_batch(db, caplog):
    caplog.set_level(logging.WARNING, logger="wn_persist_plugin.ingest.writer")
    tracked = TrackedSet.of([TrackedEntry(TRACKED, "me")])
    db.close()
    writer = Writer(db).start()
    bad = envelope(100)
    bad["esi"]["attackers"][0]["ship_type_id"] = 2**63
    for mail in [envelope(1), envelope(2), envelope(3), bad, envelope(4), envelope(5)]:
        assert writer.offer(mail, tracked)
    assert writer.stop(30)
    db.connect(reuse_if_open=True)
    stored = sorted(Involvement.select(Involvement.killmail_id).tuples().execute(db))
    assert stored == [(1,), (2,), (3,), (4,), (5,)]
    assert writer.counters.malformed == 1
    assert writer.counters.rows_written == 5 and writer.counters.write_errors == 0
    assert any("killmail 100" in r.getMessage() for r in caplog.records)


def test_a_row_the_column_cannot_hold_fails_alone(db):
    tracked = TrackedSet.of_ids([TRACKED])
    rows = involvement_rows(km.parse(envelope(1)), tracked) + involvement_rows(
        km.parse(envelope(2)), tracked
    )
    # Past the parser, e.g. a host's own rows:
    rows[0] = dataclasses.replace(rows[0], ship_type_id=2**63)
    result = write_rows(db, rows)
    assert [row.killmail_id for row, _ in result.failed] == [1]
    assert Involvement.select().where(Involvement.killmail_id == 2).count() == 1


def test_tracked_id_out_of_range_is_an_invalid_entry(db):
    result = normalize(
        [
            {"character_id": 9001},
            {"character_id": 9002},
            {"character_id": str(2**64)},
            {"character_id": 2**63},
        ]
    )
    assert sorted(e.character_id for e in result.entries) == [9001, 9002]
    assert len(result.invalid) == 2 and str(2**64) in result.invalid[0]
    assert store_tracked(db, result.entries) == 2
    assert TrackedCharacter.select().count() == 2


def test_tracked_corporation_id_out_of_range_is_dropped(db):
    result = normalize([{"character_id": 9001, "corporation_id": 2**64}])
    assert result.entries[0].corporation_id is None
    store_tracked(db, result.entries)
    assert TrackedCharacter.get(TrackedCharacter.character_id == 9001).corporation_id is None
