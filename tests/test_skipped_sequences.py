"""Sequences the host skipped for an unusable mail: recorded by `wn-persist run`, listed by
`feed_state.skipped_sequences`, shown by `db status` (both databases)."""

from __future__ import annotations

from click.testing import CliRunner
from fakes.r2z2 import FakeR2Z2
from fakes.recording import FAST, HostThread, RecordingPlugin, settings_for, wait_for

from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.cli import main
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.host import feed_state
from wn_persist_plugin.sources.r2z2 import R2Z2Client

FIRST = 90_000_000


def unusable_mail(envelope: dict) -> dict:
    esi = {k: v for k, v in envelope["esi"].items() if k != "attackers"}
    return {**envelope, "esi": esi}


def test_record_and_list(db):
    feed_state.record_skipped(
        db,
        [
            feed_state.Skipped(FIRST + 1, 123, "no attackers"),
            feed_state.Skipped(FIRST + 5, None, "no victim"),
        ],
    )
    feed_state.record_skipped(db, [feed_state.Skipped(FIRST + 1, 123, "again")])
    listed = feed_state.skipped_sequences(db)
    assert [(s.sequence, s.killmail_id, s.reason) for s in listed] == [
        (FIRST + 5, None, "no victim"),
        (FIRST + 1, 123, "again"),
    ]
    assert feed_state.count_skipped(db) == 2


def test_run_records_an_unusable_sequence_and_status_shows_it(
    fresh_url, real_envelopes, monkeypatch
):
    mails = [m for m in real_envelopes if len(m["esi"]["attackers"]) < 50][:6]
    served = [*mails[:2], unusable_mail(mails[2]), *mails[3:]]
    tracked = [
        m["esi"]["victim"]["character_id"] for m in mails if m["esi"]["victim"].get("character_id")
    ]
    with FakeR2Z2(served, first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            fresh_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            HOST_CHECKPOINT_SECONDS=0,
            **FAST,
        )
        plugin = RecordingPlugin(flush_result=True)
        thread = HostThread(settings, [plugin])
        host = thread.host
        host.feed = R2Z2Client(
            feed.url,
            timeout=1.0,
            not_found_wait=0.05,
            max_backoff=0.05,
            unusable_attempts=3,
            unusable_seconds=0.1,
        )
        with thread as run:
            wait_for(lambda: len(plugin.sequences()) == 5, what="5 mails")
            result = run.stop()
    assert FIRST + 2 not in plugin.sequences()
    assert result.counters.unusable_sequences == 1 and result.counters.skipped_sequences == 1
    db = open_database(settings, bind=False)
    try:
        listed = feed_state.skipped_sequences(db)
    finally:
        db.close()
    assert [(s.sequence, s.killmail_id) for s in listed] == [(FIRST + 2, mails[2]["killmail_id"])]
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    out = CliRunner().invoke(main, ["db", "status"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("skipped sequences:"))
    assert f"1 (newest: sequence {FIRST + 2} (killmail {mails[2]['killmail_id']}" in line


def test_skipped_sequences_metric_counts_the_table_at_scrape_time(db):
    registry = make_registry(db)
    assert registry.get_sample_value("wn_persist_feed_skipped_sequences") == 0
    feed_state.record_skipped(
        db, [feed_state.Skipped(FIRST + n, None, "no victim") for n in range(3)]
    )
    assert registry.get_sample_value("wn_persist_feed_skipped_sequences") == 3
    feed_state.record_skipped(db, [feed_state.Skipped(FIRST, 5, "again")])  # same sequence
    assert registry.get_sample_value("wn_persist_feed_skipped_sequences") == 3
