"""The plugin runs the statistics scheduler: started with persistence, stopped at shutdown,
and its job aggregates what the writer stored (SQLite and PostgreSQL, real killmails)."""

from __future__ import annotations

from test_pipeline import Host, sample_characters

from wn_persist_plugin.db.models import Involvement, KillmailStatistics
from wn_persist_plugin.enrichment import static_data as universe

UNKNOWN_REGION = "unknown"


def test_scheduler_lives_with_the_plugin_and_aggregates_stored_mails(
    db_url, db, real_envelopes, real_data_dir
):
    # Regions come from the SDE tables on the write path; ESI stays off (no network here).
    universe.import_directory(db, real_data_dir / "universe")
    host = Host(
        db_url, PERSISTENCE_AGGREGATION_SCHEDULE="0 3 * * *", PERSISTENCE_ESI_ENRICHMENT="false"
    )
    scheduler = host.plugin._scheduler
    try:
        assert scheduler is not None and scheduler.running
        assert scheduler.cron == "0 3 * * *"
        tracked = sample_characters(real_envelopes, 300)
        host.track([{"character_id": c} for c in tracked])
        host.kill(*real_envelopes)
        assert host.plugin.flush_pending(60)
        assert Involvement.select().count() > 0
        report = scheduler.run_now()
        assert report.ok, report.error
        characters = {
            r.related_character_id for r in Involvement.select(Involvement.related_character_id)
        }
        daily = KillmailStatistics.select().where(KillmailStatistics.period_type == "daily")
        assert {s.character_id for s in daily} == characters
        # every stored mail got its region from the universe tables as it was written ...
        I = Involvement  # noqa: E741
        missing = I.select(I.solar_system_id).where(I.region_id.is_null())
        assert not missing.exists(), sorted({r.solar_system_id for r in missing})[:10]
        # ... so region activity names real regions only
        monthly = KillmailStatistics.select().where(KillmailStatistics.period_type == "monthly")
        assert all(UNKNOWN_REGION not in s.region_activity for s in monthly)
    finally:
        host.stop()
    assert host.plugin._scheduler is None and not scheduler.running


def test_disabled_plugin_starts_no_scheduler(db_url):
    host = Host(db_url, ENABLE_PERSISTENCE="false")
    assert host.plugin._scheduler is None
    host.stop()
