"""Metrics: database figures at scrape time, request durations by route template, and the
plugin's pipeline counters through `register_pipeline_metrics` (both databases)."""

from __future__ import annotations

import json
from pathlib import Path

from api_support import seeded_database  # noqa: F401 - the `seeded` fixture
from prometheus_client import CollectorRegistry, generate_latest

from wn_persist_plugin.api.metrics import register_pipeline_metrics
from wn_persist_plugin.plugin import PersistencePlugin


def test_database_figures_and_request_durations(seeded):
    cid = sorted(seeded.tracked)[0]
    seeded.client.simulate_get(f"/api/v1/characters/{cid}/stats")
    text = seeded.client.simulate_get("/metrics").text
    count = seeded.db.execute_sql("SELECT COUNT(*) FROM killmails").fetchone()[0]
    get = seeded.registry.get_sample_value
    assert get("wn_persist_table_rows", {"table": "killmails"}) == count
    assert get("wn_persist_table_rows", {"table": "tracked_characters"}) == len(seeded.tracked)
    assert get("wn_persist_database_size_bytes") > 0
    assert get("wn_persist_database_up") == 1
    assert get("wn_persist_aggregation_last_run_timestamp_seconds", {"period_type": "daily"}) > 0
    assert get("wn_persist_aggregation_last_duration_seconds", {"period_type": "monthly"}) >= 0
    route = "/api/v1/characters/{character_id}/stats"
    labels = {"route": route, "method": "GET", "status": "200"}
    assert get("wn_persist_http_request_duration_seconds_count", labels) >= 1
    assert (
        get(
            "wn_persist_build_info",
            {
                "version": __import__("wn_persist_plugin").__version__,
                "python": __import__("platform").python_version(),
            },
        )
        == 1
    )  # noqa: E501
    assert str(cid) not in text.replace(route, "")  # no per-character labels


def test_pipeline_counters_from_a_running_plugin(db, db_url, real_envelopes, tmp_path):
    plugin = PersistencePlugin(environ={}, dotenv=tmp_path / "none.env")
    tracked = sorted({a["character_id"] for a in real_envelopes[0]["esi"]["attackers"]
                      if a.get("character_id")})  # fmt: skip
    plugin.on_startup(
        config={
            "ENABLE_PERSISTENCE": "true",
            "DATABASE_URL": db_url,
            "TRACKED_CHARACTER_IDS": ",".join(map(str, tracked)),
        }  # fmt: skip
    )
    try:
        plugin.on_tracked_characters_updated([{"character_id": c} for c in tracked])
        for env in real_envelopes[:40]:
            plugin.on_kill_processed(env)
        plugin.on_kill_processed({"not": "a killmail"})
        assert plugin.flush_pending(timeout=30)
        registry = CollectorRegistry()
        register_pipeline_metrics(registry, plugin.pipeline_stats)
        stats = plugin.pipeline_stats()
        get = registry.get_sample_value
        assert get("wn_persist_killmails_seen_total") == stats.seen == 41
        assert get("wn_persist_killmails_matched_total") == stats.matched >= 1
        assert get("wn_persist_killmails_ignored_total") == stats.ignored
        assert get("wn_persist_killmails_malformed_total") == stats.malformed >= 1
        assert get("wn_persist_killmails_dropped_total") == stats.dropped
        assert get("wn_persist_killmails_written_total") == stats.mails_written >= 1
        assert get("wn_persist_writer_queue_depth") == stats.queued == 0
        assert b"wn_persist_killmails_seen_total 41.0" in generate_latest(registry)
    finally:
        plugin.on_shutdown()
    assert json.dumps(stats.as_dict())  # the provider's type is the hook's PipelineStats
    assert not Path(tmp_path / "none.env").exists()
