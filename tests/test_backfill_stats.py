"""Backfill re-aggregates the touched periods, and statistics pick up regions filled later
(needs the statistics module; skips until it is there)."""

from __future__ import annotations

import json

import pytest
from test_backfill import characters, write_archive

from wn_persist_plugin import universe
from wn_persist_plugin.backfill import backfill_paths
from wn_persist_plugin.enrichment import enrich
from wn_persist_plugin.models import Killmail, KillmailStatistics

aggregation = pytest.importorskip("wn_persist_plugin.aggregation")


def _activity() -> str:
    rows = KillmailStatistics.select(KillmailStatistics.region_activity)
    return json.dumps([r.region_activity for r in rows if r.region_activity])


def test_backfill_aggregates_and_later_regions_reach_the_statistics(
    db, real_envelopes, real_data_dir, tmp_path
):
    envelopes = real_envelopes[:80]
    tracked = characters(envelopes)[::5]
    archive = write_archive(tmp_path / "killmails-2026-07-25.tar.bz2", envelopes)
    summary = backfill_paths(db, [archive], track=tracked)  # no universe tables yet
    assert summary.aggregated
    assert KillmailStatistics.select().count() > 0
    assert Killmail.select().where(Killmail.region_id.is_null(False)).count() == 0
    before = _activity()
    universe.import_directory(db, real_data_dir / "universe")
    filled = enrich(db, None)
    assert filled.regions_filled == Killmail.select().count()
    aggregation.aggregate(db)
    after = _activity()
    regions = {(r.region_id, r.region_name) for r in Killmail.select()}
    for region_id, region_name in regions:
        assert str(region_id) not in before and region_name not in before
        assert str(region_id) in after or region_name in after
