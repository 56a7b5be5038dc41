"""The plugin through pluggy, as a host drives it, on SQLite and PostgreSQL, with the real
killmails: matching, every envelope, redelivery, malformed mails, startup and settings."""

from __future__ import annotations

import json
import logging
import random
from decimal import Decimal
from pathlib import Path

import pluggy
import pytest
from test_killmail import SHAPES

from wn_persist_plugin import hookspecs
from wn_persist_plugin.db.models import Involvement, TrackedCharacter
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.plugin import PersistencePlugin

NO_DOTENV = Path("/nonexistent/.env")


class Host:
    """A minimal host: a pluggy manager with the contract and one plugin instance."""

    def __init__(self, url: str | None, **config: str) -> None:
        self.plugin = PersistencePlugin(environ={}, dotenv=NO_DOTENV)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(self.plugin)
        settings = {"ENABLE_PERSISTENCE": "true", **config}
        if url:
            settings["DATABASE_URL"] = url
        self.pm.hook.on_startup(config=settings)

    def track(self, characters) -> None:
        self.pm.hook.on_tracked_characters_updated(characters=characters)

    def kill(self, *mails) -> None:
        for mail in mails:
            self.pm.hook.on_kill_processed(killmail=mail)

    def stop(self) -> None:
        self.pm.hook.on_shutdown()


def player_ids(envelope):
    esi = envelope["esi"]
    victim = esi["victim"].get("character_id")
    return victim, {a["character_id"] for a in esi["attackers"] if a.get("character_id")}


def expected_keys(envelopes, tracked):
    """(killmail_id, character, role) computed straight from the JSON, independently."""
    keys = set()
    for envelope in envelopes:
        victim, attackers = player_ids(envelope)
        if victim in tracked:
            keys.add((envelope["killmail_id"], victim, "victim"))
        keys.update((envelope["killmail_id"], c, "attacker") for c in attackers & tracked)
    return keys


def stored_keys():
    query = Involvement.select(
        Involvement.killmail_id, Involvement.related_character_id, Involvement.character_role
    ).tuples()
    return set(query)


def sample_characters(envelopes, count, seed=7):
    found = set()
    for envelope in envelopes:
        victim, attackers = player_ids(envelope)
        found |= attackers | ({victim} if victim else set())
    return random.Random(seed).sample(sorted(found), count)


def test_disabled_plugin_is_inert(db_url, caplog):
    caplog.set_level(logging.INFO, logger="wn_persist_plugin")
    host = Host(db_url, ENABLE_PERSISTENCE="false")
    assert not host.plugin.active
    host.track([{"character_id": 1}])
    host.kill({"garbage": True})
    host.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["wn-persist: persistence disabled (ENABLE_PERSISTENCE is false)"]
    assert host.plugin.pipeline_stats().seen == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENABLE_PERSISTENCE", "maybe"),
        ("PERSISTENCE_QUEUE_SIZE", "lots"),
        ("PERSISTENCE_BATCH_SIZE", "0"),
        ("PERSISTENCE_SHUTDOWN_TIMEOUT", "-1"),
    ],
)
def test_bad_setting_stops_startup_naming_the_variable(variable, value, tmp_path):
    with pytest.raises(ConfigError) as err:
        Host(f"sqlite:///{tmp_path / 'x.db'}", **{variable: value})
    assert str(err.value).startswith(f"{variable}: ")
    assert "\n" not in str(err.value)


def test_real_corpus_stores_every_tracked_involvement(db, db_url, real_envelopes):
    tracked = sample_characters(real_envelopes, 1000)
    host = Host(db_url)
    # Wanderer map API shape, EVE ids as strings.
    host.track(
        [
            {
                "tracked": True,
                "character_id": "uuid",
                "character": {"eve_id": str(c), "name": f"N{c}"},
            }
            for c in tracked
        ]
    )
    host.kill(*real_envelopes)
    assert host.plugin.flush_pending(60)
    want = expected_keys(real_envelopes, set(tracked))
    assert stored_keys() == want
    stats = host.plugin.pipeline_stats()
    matched = sum(1 for e in real_envelopes if expected_keys([e], set(tracked)))
    assert (stats.seen, stats.matched, stats.ignored) == (
        len(real_envelopes),
        matched,
        len(real_envelopes) - matched,
    )
    assert stats.rows_written == len(want) and stats.write_errors == 0 and stats.dropped == 0
    # Names from the tracked list; values exactly zkb.totalValue; no zkb -> NULL.
    by_mail = {e["killmail_id"]: e for e in real_envelopes}
    for row in Involvement.select().limit(300):
        assert row.related_character_name == f"N{row.related_character_id}"
        zkb = by_mail[row.killmail_id]["zkb"]
        if zkb is None:
            assert row.total_value is None
        else:
            assert row.total_value == Decimal(str(zkb["totalValue"])).quantize(Decimal("0.01"))
    host.stop()
    assert TrackedCharacter.select().where(TrackedCharacter.tracked).count() == 1000


def test_redelivery_changes_nothing_and_a_later_value_fills_in(db, db_url, real_envelopes):
    with_zkb = [e for e in real_envelopes if e["zkb"] and len(e["esi"]["attackers"]) < 50][:40]
    tracked = sample_characters(with_zkb, 60)
    host = Host(db_url)
    host.track([{"character_id": c} for c in tracked])
    first = with_zkb[0]
    host.kill(dict(first, zkb=None))  # first delivered without a value (an ESI-only source)
    host.plugin.flush_pending(30)
    assert {r.total_value for r in Involvement.select()} <= {None}
    host.kill(*with_zkb)
    host.plugin.flush_pending(30)
    before = {
        (r.killmail_id, r.related_character_id, r.character_role): (r.total_value, r.processed_at)
        for r in Involvement.select()
    }
    assert all(value is not None for value, _ in before.values())
    host.kill(*with_zkb, *with_zkb)
    host.plugin.flush_pending(30)
    after = {
        (r.killmail_id, r.related_character_id, r.character_role): (r.total_value, r.processed_at)
        for r in Involvement.select()
    }
    assert after == before
    assert set(before) == expected_keys(with_zkb, set(tracked))
    host.stop()


def test_every_envelope_shape_through_the_hook(db, db_url):
    host = Host(db_url)
    host.track([{"character_id": 90000002, "character_name": "Tracked Two"}])
    for offset, shape in enumerate(sorted(SHAPES)):
        envelope = json.loads(json.dumps(SHAPES[shape]()))
        killmail_id = 1000 + offset
        for part in (
            envelope,
            envelope.get("esi"),
            envelope.get("esi_data"),
            envelope.get("package"),
            (envelope.get("package") or {}).get("killmail"),
            envelope.get("killmail"),
        ):
            if isinstance(part, dict):
                for key in ("killmail_id", "killID"):
                    if key in part:
                        part[key] = killmail_id
        host.kill(envelope)
    host.plugin.flush_pending(30)
    rows = {r.killmail_id: r for r in Involvement.select()}
    assert sorted(rows) == list(range(1000, 1000 + len(SHAPES)))
    for row in rows.values():
        assert row.character_role == "attacker"
        assert row.ship_type_id == 11202 and row.final_blow is True
        assert row.total_value == Decimal("10123456.78")
        assert row.attacker_count == 3
    shape_of = dict(zip(range(1000, 1000 + len(SHAPES)), sorted(SHAPES), strict=True))
    names = {shape_of[k]: r.related_character_name for k, r in rows.items()}
    assert names["wanderer_kills"] == "Attacker 0"  # inline name wins
    assert names["r2z2"] == "Tracked Two"  # from the tracked list
    assert rows[1000 + sorted(SHAPES).index("notifier_struct")].solar_system_name == "Jita"
    host.stop()


def test_malformed_mails_are_counted_logged_and_never_raised(db, db_url, caplog):
    host = Host(db_url)
    host.track([{"character_id": 90000002}])
    good = SHAPES["r2z2"]()
    bad_time = json.loads(json.dumps(good))
    bad_time["killmail_id"] = 77
    bad_time["esi"]["killmail_time"] = "not a time"
    host.kill(
        None,
        "text",
        {"killmail_id": 71, "esi": "not a dict"},
        {"killmail_id": 72, "esi": {"attackers": []}},
        {"killmail_id": 73, "esi": {"victim": {}, "attackers": "x"}},
        {"killmail_id": 74, "esi": {"victim": {"character_id": "zz"}, "attackers": []}},
        bad_time,  # matched on arrival, refused by the parser on the writer thread
        good,
    )
    assert host.plugin.flush_pending(30)
    stats = host.plugin.pipeline_stats()
    assert stats.malformed == 7
    assert stats.seen == 8 and stats.errors == 0
    assert [r.killmail_id for r in Involvement.select()] == [131126432]
    logged = " ".join(r.getMessage() for r in caplog.records)
    for killmail_id in (71, 72, 73, 74, 77):
        assert f"killmail {killmail_id}" in logged
    host.stop()


def test_startup_loads_tracked_characters_from_the_table(db, db_url, real_envelopes):
    tracked = sample_characters(real_envelopes, 200)
    first = Host(db_url)
    first.track([{"character_id": c} for c in tracked])
    first.stop()
    second = Host(db_url)  # no tracked list pushed this time
    assert second.plugin.tracked.ids == frozenset(tracked)
    second.kill(*real_envelopes)
    second.plugin.flush_pending(60)
    assert stored_keys() == expected_keys(real_envelopes, set(tracked))
    second.stop()


def test_two_instances_in_one_process_are_independent(db, db_url):
    one, two = Host(db_url), Host(db_url)
    one.track([{"character_id": 90000002}])
    two.track([{"character_id": 90000001}])
    one.kill(SHAPES["r2z2"]())
    one.plugin.flush_pending(30)
    two.plugin.flush_pending(30)
    assert stored_keys() == {(131126432, 90000002, "attacker")}
    assert two.plugin.pipeline_stats().seen == 0 and one.plugin.pipeline_stats().matched == 1
    one.stop()
    two.kill(SHAPES["r2z2"]())
    two.stop()
    assert stored_keys() == {(131126432, 90000002, "attacker"), (131126432, 90000001, "victim")}


def test_a_list_with_no_usable_entry_keeps_the_previous_one(db, db_url, caplog):
    host = Host(db_url)
    host.track([{"character_id": 90000002}])
    host.track([{"character": {"eve_id": "uuid-not-an-id"}}, {"id": 5}])
    assert host.plugin.tracked.ids == frozenset({90000002})
    assert "keeping the previous 1 characters" in caplog.text
    host.track([{"tracked": False, "character": {"eve_id": "90000002"}}])  # nobody now
    assert host.plugin.tracked.ids == frozenset()
    host.kill(SHAPES["r2z2"]())
    host.stop()
    assert host.plugin.pipeline_stats().ignored == 1
    assert TrackedCharacter.select().where(TrackedCharacter.tracked).count() == 0


def test_host_calling_from_several_threads(db, db_url, real_envelopes):
    import threading

    tracked = sample_characters(real_envelopes, 500, seed=11)
    host = Host(db_url)
    host.track([{"character_id": c} for c in tracked])
    threads = [threading.Thread(target=host.kill, args=real_envelopes) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert host.plugin.flush_pending(60)
    stats = host.plugin.pipeline_stats()
    matched = sum(1 for e in real_envelopes if expected_keys([e], set(tracked)))
    assert (stats.seen, stats.matched) == (4 * len(real_envelopes), 4 * matched)
    assert stats.mails_written == 4 * matched and stats.dropped == 0
    assert stored_keys() == expected_keys(real_envelopes, set(tracked))
    host.stop()
