"""A zkb block whose value is negative, NaN or infinite is unusable: the mail is stored
without a value and warned about, never stored with a value statistics cannot add up."""

from __future__ import annotations

import pytest
from reference_stats import envelope

from wn_persist_plugin.db.models import Involvement
from wn_persist_plugin.ingest.library import maybe_persist_killmail
from wn_persist_plugin.killmails import parse as km
from wn_persist_plugin.statistics import queries as sq
from wn_persist_plugin.statistics.aggregation import aggregate

TRACKED = 9001
BAD = [-1.5, "-0.01", float("nan"), "NaN", float("inf"), "-inf"]


def with_value(value, key="totalValue"):
    mail = envelope(1, "2026-11-01T10:00:00Z", attackers=[TRACKED], value=1000)
    mail["zkb"][key] = value
    return mail


@pytest.mark.parametrize("value", BAD)
def test_parse_makes_the_zkb_block_unusable(value):
    mail = km.parse(with_value(value))
    assert mail.zkb is None and mail.total_value is None
    assert "totalValue" in mail.zkb_warning and "stored without a value" in mail.zkb_warning


@pytest.mark.parametrize("key", ["fittedValue", "droppedValue", "destroyedValue"])
def test_other_values_are_checked_too(key):
    assert km.parse(with_value(float("nan"), key)).zkb is None


def test_zero_is_a_value():
    assert km.parse(with_value(0)).total_value == 0


@pytest.mark.parametrize("value", [-1.5, float("nan"), float("inf")])
def test_persisted_without_a_value_and_statistics_stay_sound(db, value):
    result = maybe_persist_killmail(with_value(value), tracked={TRACKED: "me"})
    assert result.status == "stored" and result.rows == 1
    assert "totalValue" in result.reason
    row = Involvement.get()
    assert row.total_value is None and row.zkb_data is None
    aggregate(db)
    daily = sq.character_periods(db, TRACKED, "daily")
    assert daily[0]["kills_count"] == 1 and daily[0]["isk_destroyed"] == 0
