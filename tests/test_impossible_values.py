"""Impossible ISK values (infinite, implausibly large, negative) are warned about with the
mail's id, stored without a value and counted "without value" by backfill."""

from __future__ import annotations

import json
import logging

import pytest

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.backfill import backfill_paths
from wn_persist_plugin.killmails.parse import MAX_ISK, parse

IMPOSSIBLE = ("1e400", "1e300", "-12345.67")


def valued(real_envelopes: list[dict], count: int) -> list[dict]:
    return [
        m
        for m in real_envelopes
        if isinstance(m.get("zkb"), dict) and isinstance(m["zkb"].get("totalValue"), int | float)
    ][:count]


@pytest.mark.parametrize("text", IMPOSSIBLE)
def test_parse_refuses_impossible_values(real_envelopes, text):
    mail = valued(real_envelopes, 1)[0]
    raw = json.dumps({**mail, "zkb": {**mail["zkb"], "totalValue": "@V@"}})
    parsed = parse(json.loads(raw.replace('"@V@"', text)))
    assert parsed.total_value is None
    assert parsed.zkb_warning and "totalValue" in parsed.zkb_warning


def test_the_cap_keeps_real_values(real_envelopes):
    values = [parse(m).total_value for m in valued(real_envelopes, 200)]
    assert all(v is not None and 0 <= v <= MAX_ISK for v in values)


def test_backfill_warns_with_the_id_and_counts_without_value(db, real_envelopes, tmp_path, caplog):
    mails = valued(real_envelopes, 3)
    lines = []
    for mail, text in zip(mails, IMPOSSIBLE, strict=True):
        raw = json.dumps({**mail, "zkb": {**mail["zkb"], "totalValue": "@V@"}})
        lines.append(raw.replace('"@V@"', text) + "\n")
    path = tmp_path / "isk.jsonl"
    path.write_text("".join(lines))
    track = [m["esi"]["victim"]["character_id"] for m in mails]
    with caplog.at_level(logging.WARNING):
        summary = backfill_paths(db, [path], track=track)
    assert summary.without_value == 3
    for mail in mails:
        kid = str(mail["killmail_id"])
        assert any(kid in r.getMessage() and "value" in r.getMessage() for r in caplog.records)
    ids = [m["killmail_id"] for m in mails]
    stored = list(Involvement.select().where(Involvement.killmail_id.in_(ids)))
    assert stored and all(row.total_value is None for row in stored)
