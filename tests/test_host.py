"""The standalone host (`wn-persist run`) against local fake R2Z2 and map servers, with a
recording plugin registered directly (the real plugin is exercised in test_host_e2e.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.r2z2 import FakeR2Z2
from fakes.recording import FAST, HostThread, RecordingPlugin, settings_for, wait_for
from fakes.wanderer_map import FakeMap, map_entry

from wn_persist_plugin.cli import main
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.hookspecs import hookimpl
from wn_persist_plugin.host.runner import Host, feed_state, make_plugin_manager
from wn_persist_plugin.ingest.counters import PipelineStats
from wn_persist_plugin.settings import HostSettings

FIRST = 90_000_000
KEY = "map-key-never-logged-42"


def involved(envelope: dict) -> set[int]:
    esi = envelope["esi"]
    ids = {a.get("character_id") for a in esi["attackers"]} | {esi["victim"].get("character_id")}
    return {i for i in ids if i is not None}


@pytest.fixture
def mails(real_envelopes):
    return real_envelopes[:30]


@pytest.fixture
def tracked(mails):
    """Three characters from the corpus: the victim of mail 0, an attacker of mail 3 and
    one of mail 7."""
    return [
        mails[0]["esi"]["victim"]["character_id"],
        next(a["character_id"] for a in mails[3]["esi"]["attackers"] if a.get("character_id")),
        next(a["character_id"] for a in mails[7]["esi"]["attackers"] if a.get("character_id")),
    ]


# -- settings ----------------------------------------------------------------------------


def host_for(settings, track=()):
    """A Host that is not run (no entry-point plugins)."""
    return Host(settings, track=track, plugin_manager=make_plugin_manager(entry_points=False))


def test_settings_defaults():
    settings = settings_for("sqlite:///x.db", TRACKED_CHARACTER_IDS="5, 7 5")
    assert settings.host == HostSettings(static_ids=(5, 7))
    assert settings.feed.base_url == "https://r2z2.zkillboard.com"
    assert not settings.map.configured
    assert host_for(settings).options.static_ids == (5, 7)
    with_track = host_for(settings_for("sqlite:///x.db"), track=[9, 5, 9])
    assert with_track.options.static_ids == (9, 5)
    both = host_for(settings, track=[9, 5])
    assert both.options.static_ids == (5, 7, 9)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({}, "TRACKED_CHARACTER_IDS"),
        ({"TRACKED_CHARACTER_IDS": "12,abc"}, "TRACKED_CHARACTER_IDS"),
        ({"TRACKED_CHARACTER_IDS": "-4"}, "TRACKED_CHARACTER_IDS"),
        ({"TRACKED_CHARACTER_IDS": "1", "R2Z2_BASE_URL": "ftp://x"}, "R2Z2_BASE_URL"),
        (
            {"TRACKED_CHARACTER_IDS": "1", "R2Z2_REQUESTS_PER_SECOND": "25"},
            "R2Z2_REQUESTS_PER_SECOND",
        ),
        ({"TRACKED_CHARACTER_IDS": "1", "R2Z2_NOT_FOUND_WAIT": "soon"}, "R2Z2_NOT_FOUND_WAIT"),
        ({"TRACKED_CHARACTER_IDS": "1", "MAP_REFRESH_SECONDS": "0"}, "MAP_REFRESH_SECONDS"),
        (
            {"TRACKED_CHARACTER_IDS": "1", "PROGRESS_INTERVAL_SECONDS": "x"},
            "PROGRESS_INTERVAL_SECONDS",
        ),
        ({"MAP_URL": "https://map.example", "MAP_NAME": "m"}, "MAP_API_KEY"),
        ({"MAP_URL": "nope", "MAP_NAME": "m", "MAP_API_KEY": KEY}, "MAP_URL"),
    ],
)
def test_bad_settings_name_the_variable(values, variable):
    with pytest.raises(ConfigError) as info:
        host_for(settings_for("sqlite:///x.db", **values))
    assert info.value.variable == variable
    assert "\n" not in str(info.value) and KEY not in str(info.value)


def test_library_errors_never_name_a_flag():
    with pytest.raises(ConfigError) as info:
        host_for(settings_for("sqlite:///x.db"))
    assert "--" not in str(info.value)


def test_api_key_not_in_repr():
    settings = settings_for(
        "sqlite:///x.db", MAP_URL="https://m.example", MAP_NAME="m", MAP_API_KEY=KEY
    )
    assert settings.map.api_key == KEY and settings.map.configured
    assert KEY not in repr(settings.map) and KEY not in repr(settings)


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, [], "TRACKED_CHARACTER_IDS: no tracked characters"),
        ({"TRACKED_CHARACTER_IDS": "1,x"}, [], "TRACKED_CHARACTER_IDS: 'x' is not"),
        ({"R2Z2_TIMEOUT": "-1"}, ["--track", "5"], "R2Z2_TIMEOUT: -1 is out of range"),
        ({}, ["--track", "abc"], "--track: 'abc' is not a character id"),
        (
            {},
            [],
            "TRACKED_CHARACTER_IDS: no tracked characters: set MAP_URL, MAP_NAME and "
            "MAP_API_KEY, or TRACKED_CHARACTER_IDS, or pass --track ID",
        ),
    ],
)
def test_cli_run_bad_setting_is_one_line_exit_2(tmp_path, monkeypatch, env, args, expected):
    monkeypatch.chdir(tmp_path)
    for name in ("TRACKED_CHARACTER_IDS", "MAP_URL", "MAP_NAME", "MAP_API_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["run", *args], env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wn-persist: error: " + expected)


# -- the feed ----------------------------------------------------------------------------


def test_first_start_begins_at_the_current_sequence(db, db_url, mails, tracked):
    with FakeR2Z2(mails, first=FIRST) as feed:
        feed.reported_latest = FIRST + 5  # the current sequence when the host starts
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            **FAST,
        )
        plugin = RecordingPlugin()
        with HostThread(settings, [plugin]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 30) in feed.paths(), what="the head")
            result = run.stop()
    assert plugin.sequences() == list(range(FIRST + 5, FIRST + 30))
    kinds = [kind for kind, _ in plugin.calls]
    assert kinds[:2] == ["startup", "tracked"] and kinds[-1] == "shutdown"
    startup = plugin.named("startup")[0]
    assert startup == {"ENABLE_PERSISTENCE": "true", "DATABASE_URL": db_url}
    assert plugin.named("tracked") == [[{"character_id": i} for i in tracked]]
    expected_matched = sum(1 for m in mails[5:] if involved(m) & set(tracked))
    assert result.counters.seen == 25 and result.counters.matched == expected_matched
    assert result.last_sequence == FIRST + 29
    assert feed_state.load_sequence(db) == FIRST + 29


def test_restart_resumes_after_the_stored_sequence(db, db_url, mails, tracked, caplog):
    """No mail fetched twice, none skipped, although the feed's latest moved on."""
    with FakeR2Z2(mails, first=FIRST, published=FIRST + 11) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url, R2Z2_BASE_URL=feed.url, TRACKED_CHARACTER_IDS=str(tracked[0]), **FAST
        )
        first_run = RecordingPlugin()
        with HostThread(settings, [first_run]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 12) in feed.paths(), what="the head")
            run.stop()
        assert feed_state.load_sequence(db) == FIRST + 11

        feed.publish(FIRST + 29)
        feed.reported_latest = None  # the feed now says FIRST + 29
        second_run = RecordingPlugin()
        with caplog.at_level(logging.INFO), HostThread(settings, [second_run]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 30) in feed.paths(), what="the head")
            run.stop()
        assert (
            f"resuming the R2Z2 feed after sequence {FIRST + 11} (stored); "
            f"the feed is at {FIRST + 29}" in caplog.text
        )
    assert first_run.sequences() == list(range(FIRST, FIRST + 12))
    assert second_run.sequences() == list(range(FIRST + 12, FIRST + 30))
    assert feed.served() == list(range(FIRST, FIRST + 30))
    assert feed_state.load_sequence(db) == FIRST + 29


def test_feed_failures_lose_and_repeat_nothing(db, db_url, mails, tracked, caplog):
    with FakeR2Z2(mails[:12], first=FIRST) as feed:
        feed.reported_latest = FIRST
        feed.fail("/ephemeral/sequence.json", "500", "garbage", "timeout:1.0")
        feed.fail(FakeR2Z2.path(FIRST + 2), "503", "close")
        feed.fail(FakeR2Z2.path(FIRST + 4), "429:1")
        feed.fail(FakeR2Z2.path(FIRST + 6), "garbage", "timeout:1.0")
        feed.fail(FakeR2Z2.path(FIRST + 8), "404", "404")
        settings = settings_for(
            db_url, R2Z2_BASE_URL=feed.url, TRACKED_CHARACTER_IDS=str(tracked[0]), **FAST
        )
        plugin = RecordingPlugin()
        with caplog.at_level(logging.WARNING), HostThread(settings, [plugin]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 12) in feed.paths(), what="the head")
            run.stop()
    assert plugin.sequences() == list(range(FIRST, FIRST + 12))
    assert feed_state.load_sequence(db) == FIRST + 11
    assert "rate limited (429); waiting 1.0 s" in caplog.text
    assert caplog.text.count("retrying in") >= 7


def test_plugin_errors_do_not_stop_the_feed(db, db_url, mails, tracked, caplog):
    bad = mails[3]["killmail_id"]
    with FakeR2Z2(mails[:8], first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url, R2Z2_BASE_URL=feed.url, TRACKED_CHARACTER_IDS=str(tracked[0]), **FAST
        )
        plugin = RecordingPlugin(fail_on={bad})
        with caplog.at_level(logging.ERROR), HostThread(settings, [plugin]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 8) in feed.paths(), what="the head")
            result = run.stop()
    assert plugin.sequences() == [s for s in range(FIRST, FIRST + 8) if s != FIRST + 3]
    assert result.counters.hook_errors == 1 and result.counters.seen == 8
    assert f"on_kill_processed failed for killmail {bad}" in caplog.text


def test_position_is_saved_only_after_the_plugin_confirms(db, db_url, mails, tracked, caplog):
    """Unconfirmed writes never move the saved position; the next run reads them again
    (at-least-once), and a confirming plugin gets checkpoints while running."""
    with FakeR2Z2(mails[:10], first=FIRST, published=FIRST + 4) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=str(tracked[0]),
            HOST_CHECKPOINT_SECONDS=0,
            **{**FAST, "HOST_FLUSH_TIMEOUT": 0.2},
        )
        unsure = RecordingPlugin(flush_result=False)
        with caplog.at_level(logging.WARNING), HostThread(settings, [unsure]) as run:
            wait_for(lambda: len(unsure.sequences()) == 5, what="5 mails")
            wait_for(lambda: unsure.flushes >= 4, what="checkpoints")
            # Saved at the first start (nothing handled yet), never moved since.
            assert feed_state.load_sequence(db) == FIRST - 1
            run.stop()
        assert feed_state.load_sequence(db) == FIRST - 1
        assert "the plugins did not confirm every write" in caplog.text

        feed.publish(FIRST + 9)
        sure = RecordingPlugin(flush_result=True)
        with HostThread(settings, [sure]) as run:
            wait_for(lambda: feed_state.load_sequence(db) == FIRST + 9, what="a checkpoint")
            assert sure.named("shutdown") == []  # saved while running, after flush()
            run.stop()
    assert sure.sequences() == list(range(FIRST, FIRST + 10))


class QueueingPlugin(RecordingPlugin):
    """Reports a queue that only `flush_pending` empties, like a background writer."""

    def __init__(self) -> None:
        super().__init__(flush_result=True)
        self.queue = 0
        self.max_seen = 0

    @hookimpl
    def on_kill_processed(self, killmail):
        super().on_kill_processed(killmail)
        self.queue += 1
        self.max_seen = max(self.max_seen, self.queue)

    @hookimpl
    def flush_pending(self, timeout):
        self.flushes += 1
        self.queue = 0
        return True

    @hookimpl
    def pipeline_stats(self):
        return PipelineStats(queued=self.queue)


def test_backpressure_pauses_the_feed_until_the_queue_is_written(db, db_url, mails, tracked):
    with FakeR2Z2(mails[:20], first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=str(tracked[0]),
            HOST_MAX_QUEUED=4,
            HOST_CHECKPOINT_SECONDS=3600,
            **FAST,
        )
        plugin = QueueingPlugin()
        with HostThread(settings, [plugin]) as run:
            wait_for(lambda: len(plugin.sequences()) == 20, what="20 mails")
            run.stop()
    assert plugin.max_seen == 4 and plugin.flushes >= 5


class DroppingPlugin(RecordingPlugin):
    """Confirms every flush but reports that it dropped a mail (a full queue)."""

    def __init__(self, drop_after: int) -> None:
        super().__init__(flush_result=True)
        self.drop_after = drop_after

    @hookimpl
    def pipeline_stats(self):
        return PipelineStats(dropped=1 if len(self.sequences()) > self.drop_after else 0)


def test_dropped_mails_keep_the_position_for_a_rereading_restart(
    db, db_url, mails, tracked, caplog
):
    with FakeR2Z2(mails[:10], first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=str(tracked[0]),
            HOST_CHECKPOINT_SECONDS=0,
            **FAST,
        )
        plugin = DroppingPlugin(drop_after=4)
        with caplog.at_level(logging.ERROR), HostThread(settings, [plugin]) as run:
            wait_for(lambda: FakeR2Z2.path(FIRST + 10) in feed.paths(), what="the head")
            run.stop()
    # Checkpoints advanced while nothing was dropped, then stopped advancing.
    assert FIRST + 2 <= feed_state.load_sequence(db) <= FIRST + 4
    assert caplog.text.count("a plugin gave up 1 mails") == 1


def test_progress_line_reads_the_pipeline_stats_hook(db_url):
    class WithStats:
        def __init__(self, queued: int, rows_written: int) -> None:
            self.stats = PipelineStats(queued=queued, rows_written=rows_written)

        @hookimpl
        def pipeline_stats(self):
            return self.stats

    class WithoutStats:
        @hookimpl
        def pipeline_stats(self):
            return None

    settings = settings_for(db_url, TRACKED_CHARACTER_IDS="5")

    def line_for(*plugins: object) -> str:
        pm = make_plugin_manager(plugins, entry_points=False)
        return Host(settings, plugin_manager=pm).progress_line()

    line = line_for(WithStats(3, 17), WithStats(1, 4), WithoutStats())
    assert "stored=21 " in line and "queue=3 " in line and "dropped" not in line
    assert "stored=? " in line_for(WithoutStats()) and "queue=? " in line_for()


def test_progress_line(db, db_url, mails, tracked, caplog):
    with FakeR2Z2(mails[:6], first=FIRST) as feed:
        feed.reported_latest = FIRST
        settings = settings_for(
            db_url,
            R2Z2_BASE_URL=feed.url,
            TRACKED_CHARACTER_IDS=",".join(map(str, tracked)),
            PROGRESS_INTERVAL_SECONDS=0.1,
            **FAST,
        )
        plugin = RecordingPlugin()
        with caplog.at_level(logging.INFO, logger="wn_persist_plugin.host.runner"):
            with HostThread(settings, [plugin]) as run:
                wait_for(lambda: FakeR2Z2.path(FIRST + 6) in feed.paths(), what="the head")
                wait_for(lambda: "progress: seen=6" in caplog.text, what="a progress line")
                run.stop()
    line = next(r.getMessage() for r in caplog.records if "progress: seen=6" in r.getMessage())
    expected = sum(1 for m in mails[:6] if involved(m) & set(tracked))
    assert f"matched={expected} " in line
    assert f"sequence={FIRST + 5} latest=" in line and "lag=" in line and "kill_age=" in line
    assert "queue=" in line and "stored=" in line


# -- the map -----------------------------------------------------------------------------


def map_settings(db_url, feed, fake, **extra):
    return settings_for(
        db_url,
        R2Z2_BASE_URL=feed.url,
        MAP_URL=fake.url,
        MAP_NAME="home",
        MAP_API_KEY=KEY,
        MAP_REFRESH_SECONDS=0.1,
        **FAST,
        **extra,
    )


def test_map_list_at_start_on_change_and_through_an_outage(db, db_url, mails, tracked, caplog):
    entries = [map_entry(tracked[0]), map_entry(tracked[1], tracked=False)]
    with (
        FakeR2Z2(mails[:20], first=FIRST, published=FIRST + 4) as feed,
        FakeMap("home", KEY, entries) as fake,
    ):
        feed.reported_latest = FIRST
        plugin = RecordingPlugin()
        with (
            caplog.at_level(logging.INFO),
            HostThread(map_settings(db_url, feed, fake), [plugin]) as run,
        ):
            wait_for(lambda: len(plugin.sequences()) == 5, what="5 mails")
            wait_for(lambda: len(fake.requests) >= 4, what="map refreshes")
            assert len(plugin.named("tracked")) == 1  # unchanged: not sent again
            first_list = plugin.named("tracked")[0]
            assert [e["character"]["eve_id"] for e in first_list] == [str(tracked[0])]

            fake.entries = [map_entry(tracked[0]), map_entry(tracked[1])]
            seen = len(fake.requests)
            wait_for(lambda: len(fake.requests) >= seen + 2, what="map refresh")
            feed.publish(FIRST + 9)
            wait_for(lambda: len(plugin.sequences()) == 10, what="10 mails")

            fake.fail("*", *["503"] * 1000)  # the map goes down
            seen = len(fake.requests)
            wait_for(lambda: len(fake.requests) >= seen + 3, what="failed refreshes")
            feed.publish(FIRST + 19)
            wait_for(lambda: len(plugin.sequences()) == 20, what="20 mails")
            result = run.stop()
    lists = plugin.named("tracked")
    assert len(lists) == 2  # start, one change; the outage changed nothing
    assert sorted(int(e["character"]["eve_id"]) for e in lists[1]) == sorted(tracked[:2])
    # The changed list reached the plugin before the mails that followed it.
    kinds = [k for k, _ in plugin.calls]
    second = [i for i, k in enumerate(kinds) if k == "tracked"][1]
    assert kinds[second - 5 : second] == ["kill"] * 5 and kinds[second + 1] == "kill"
    both = set(tracked[:2])
    expected = sum(1 for m in mails[:5] if tracked[0] in involved(m)) + sum(
        1 for m in mails[5:20] if involved(m) & both
    )
    assert result.counters.matched == expected
    assert "keeping the last known list (1 characters)" in caplog.text or (
        "keeping the last known list (2 characters)" in caplog.text
    )
    assert KEY not in caplog.text


def test_map_down_at_start(db, db_url, mails, tracked, caplog):
    with (
        FakeR2Z2(mails[:3], first=FIRST) as feed,
        FakeMap("home", KEY, [map_entry(tracked[1])]) as fake,
    ):
        feed.reported_latest = FIRST
        fake.fail("*", "500", "timeout:1.0")
        static = RecordingPlugin()
        settings = map_settings(db_url, feed, fake, TRACKED_CHARACTER_IDS=str(tracked[0]))
        with caplog.at_level(logging.WARNING), HostThread(settings, [static]) as run:
            wait_for(lambda: len(static.named("tracked")) == 1, what="static list")
            assert static.named("tracked")[0] == [{"character_id": tracked[0]}]
            wait_for(lambda: len(static.sequences()) == 3, what="3 mails")
            run.stop()
        assert "keeping the last known list (none yet)" in caplog.text

        fake.fail("*", "500")
        nothing = RecordingPlugin()
        with (
            caplog.at_level(logging.WARNING),
            HostThread(map_settings(db_url, feed, fake), [nothing]) as run,
        ):
            wait_for(lambda: "no tracked list yet" in caplog.text, what="the warning")
            wait_for(lambda: fake.paths(200), what="the map to answer")
            feed.objects[FIRST + 3] = {**mails[3], "sequence_id": FIRST + 3}
            feed.last = FIRST + 3
            feed.publish(FIRST + 3)
            wait_for(lambda: len(nothing.sequences()) == 1, what="a new mail")
            run.stop()
    lists = nothing.named("tracked")
    assert len(lists) == 1 and [e["character"]["eve_id"] for e in lists[0]] == [str(tracked[1])]
    kinds = [k for k, _ in nothing.calls]
    assert kinds.index("tracked") < kinds.index("kill")


def test_compose_empty_values_mean_defaults():
    """docker-compose.yml passes every unset setting as an empty string: that must mean
    'unset' (SQLite, no map, default feed), and ENABLE_PERSISTENCE picks PostgreSQL only
    through POSTGRES_HOST."""
    from wn_persist_plugin.settings import load_settings

    empty = dict.fromkeys(
        [
            "POSTGRES_HOST",
            "POSTGRES_POOL_SIZE",
            "MAP_URL",
            "MAP_NAME",
            "MAP_API_KEY",
            "MAP_REFRESH_SECONDS",
            "R2Z2_BASE_URL",
            "USER_AGENT_CONTACT",
            "PROGRESS_INTERVAL_SECONDS",
            "PERSISTENCE_RETENTION_DAYS",
            "PERSISTENCE_AGGREGATION_SCHEDULE",
        ],
        "",
    )
    raw = {**empty, "POSTGRES_PORT": "5432", "POSTGRES_USER": "wanderer"}
    raw["TRACKED_CHARACTER_IDS"] = "2123019188"
    settings = load_settings(environ=raw, dotenv=Path("/nonexistent/.env"))
    assert settings.database_url == "sqlite:///wn_persist.db"
    assert settings.host == HostSettings(static_ids=(2123019188,))
    assert not settings.map.configured and settings.user_agent_contact is None
    raw["POSTGRES_HOST"] = "postgres"
    with_pg = load_settings(environ=raw, dotenv=Path("/nonexistent/.env"))
    assert with_pg.database_url == "postgresql://wanderer@postgres:5432/wanderer_notifier"
