"""Backfill re-aggregates the touched periods, and statistics pick up regions filled later."""

from __future__ import annotations

import json
import threading

from fakes_esi import *  # noqa: F403 - the fake servers' fixtures
from test_backfill import characters, write_archive

from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import Involvement, KillmailStatistics
from wn_persist_plugin.enrichment import static_data as universe
from wn_persist_plugin.enrichment.fill import enrich
from wn_persist_plugin.ingest import backfill as bf
from wn_persist_plugin.ingest.backfill import backfill_paths
from wn_persist_plugin.statistics import aggregation


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
    assert Involvement.select().where(Involvement.region_id.is_null(False)).count() == 0
    before = _activity()
    universe.import_directory(db, real_data_dir / "universe")
    filled = enrich(db, None)
    assert filled.regions_filled == Involvement.select().count()
    aggregation.aggregate(db)
    after = _activity()
    regions = {(r.region_id, r.region_name) for r in Involvement.select()}
    for region_id, region_name in regions:
        assert str(region_id) not in before and region_name not in before
        assert str(region_id) in after or region_name in after


def test_a_busy_statistics_job_leaves_the_work_to_its_next_run(
    db, db_url, real_envelopes, tmp_path, monkeypatch
):
    from wn_persist_plugin.db.joblock import STATISTICS_JOB, job_lock

    monkeypatch.setattr(bf, "AGGREGATE_WAIT", 0.3)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = open_database(db_url, bind=False)
        with job_lock(other, STATISTICS_JOB):
            held.set()
            release.wait(30)
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        envelopes = real_envelopes[:20]
        archive = write_archive(tmp_path / "a.tar.bz2", envelopes)
        summary = backfill_paths(db, [archive], track=characters(envelopes)[::5])
    finally:
        release.set()
        holder.join()
    assert summary.ok and not summary.aggregated
    assert "busy" in summary.statistics
    assert Involvement.select().count() > 0  # the rows are stored all the same
    aggregation.aggregate(db)  # the next run picks them up
    assert KillmailStatistics.select().count() > 0


def test_esi_down_then_back_regions_reach_the_statistics(
    db, real_envelopes, tmp_path, fake_server, esi_client
):
    envelopes = real_envelopes[:40]
    archive = write_archive(tmp_path / "a.tar.bz2", envelopes)
    fake_server.down = True
    summary = backfill_paths(db, [archive], track=characters(envelopes)[::4], esi=esi_client)
    assert summary.ok and summary.aggregated  # ESI down loses nothing
    assert Involvement.select().count() > 0
    assert Involvement.select().where(Involvement.region_id.is_null(False)).count() == 0
    before = _activity()
    fake_server.down = False
    result = enrich(db, esi_client)  # the scheduled job's step, ESI back
    assert not result.esi_errors and result.regions_filled == Involvement.select().count()
    aggregation.aggregate(db)
    after = _activity()
    for region_id in {r.region_id for r in Involvement.select()}:
        assert str(region_id) not in before and str(region_id) in after
