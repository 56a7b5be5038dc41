"""JSON columns take Decimals: a host that decodes JSON with parse_float=Decimal (ijson,
simplejson's use_decimal) stores its mails like any other, on both databases."""

from __future__ import annotations

import json
from decimal import Decimal

from reference_stats import envelope

from wn_persist_plugin.db.fields import json_dumps
from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.library import maybe_persist_killmail

TRACKED = 9001


def decimal_envelope() -> dict:
    mail = envelope(1, "2026-11-01T10:00:00Z", victim=TRACKED, attackers=[7], value=1234.5)
    mail["esi"]["victim"]["position"] = {"x": 1.25e12, "y": -3.5, "z": 0.0}
    return json.loads(json.dumps(mail), parse_float=Decimal)


def test_json_dumps_turns_decimals_into_numbers():
    assert json_dumps({"a": Decimal("1234.5"), "b": Decimal("1000.0"), "c": Decimal("5")}) == (
        '{"a": 1234.5, "b": 1000.0, "c": 5}'
    )


def test_mail_decoded_with_decimal_floats_is_stored(db):
    mail = decimal_envelope()
    assert isinstance(mail["zkb"]["totalValue"], Decimal)
    result = maybe_persist_killmail(mail, tracked={TRACKED: "me"})
    assert result.status == "stored" and result.rows == 1, result
    row = Involvement.get()
    assert row.total_value == Decimal("1234.50")
    assert row.zkb_data["totalValue"] == 1234.5
    assert row.victim_data["position"] == {"x": 1.25e12, "y": -3.5, "z": 0.0}


def test_model_json_fields_take_decimals(db):
    maybe_persist_killmail(
        envelope(2, "2026-11-01T10:00:00Z", victim=TRACKED, attackers=[7], value=1), [TRACKED]
    )
    Involvement.update(zkb_data={"totalValue": Decimal("12.5"), "points": Decimal("3")}).execute()
    assert Involvement.get().zkb_data == {"totalValue": 12.5, "points": 3}
