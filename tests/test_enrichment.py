"""Regions and names for stored killmails: from the SDE tables, from the fake ESI, with
ESI down and back; each id asked once; processed_at moves for every filled row."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin.db.models import EntityName, Involvement, TrackedCharacter, UniverseSystem
from wn_persist_plugin.enrichment import static_data as universe
from wn_persist_plugin.enrichment.fill import (
    RowFiller,
    cached_names,
    enrich,
    fill_from_tables,
    scheduler_step,
)
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.ingest.rows import involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails.parse import parse
from wn_persist_plugin.settings import Settings, load_settings

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def tracked_ids(envelopes) -> set[int]:
    """Every victim with a character, and each mail's final-blow player."""
    ids = set()
    for env in envelopes:
        body = env["esi"]
        if body["victim"].get("character_id"):
            ids.add(body["victim"]["character_id"])
        for attacker in body["attackers"]:
            if attacker.get("final_blow") and attacker.get("character_id"):
                ids.add(attacker["character_id"])
    return ids


def store_live(db, envelopes, tracked) -> int:
    rows = []
    for env in envelopes:
        rows.extend(involvement_rows(parse(env), TrackedSet.of_ids(tracked)))
    result = write_rows(db, rows, now=LONG_AGO)
    assert not result.failed
    return len(rows)


@pytest.fixture(scope="module")
def sde_regions(real_data_dir) -> dict[int, tuple[int, str]]:
    folder = real_data_dir / "universe"
    with (folder / "mapRegions.csv").open(newline="") as fh:
        names = {int(r["regionID"]): r["regionName"] for r in csv.DictReader(fh)}
    with (folder / "mapSolarSystems.csv").open(newline="") as fh:
        return {
            int(r["solarSystemID"]): (int(r["regionID"]), names[int(r["regionID"])])
            for r in csv.DictReader(fh)
        }


def test_regions_from_the_sde_for_every_stored_mail(db, real_envelopes, real_data_dir, sde_regions):
    tracked = tracked_ids(real_envelopes)
    stored = store_live(db, real_envelopes, tracked)
    assert Involvement.select().where(Involvement.region_id.is_null(False)).count() == 0
    universe.import_directory(db, real_data_dir / "universe")
    result = enrich(db, None)
    assert result.regions_filled == stored and result.region_names_filled == stored
    assert not result.esi_errors and result.systems_fetched == 0  # no ESI asked
    for kid, system, region, name, processed in Involvement.select(
        Involvement.killmail_id,
        Involvement.solar_system_id,
        Involvement.region_id,
        Involvement.region_name,
        Involvement.processed_at,
    ).tuples():
        assert (region, name) == sde_regions[system], kid
        assert processed > LONG_AGO  # the change marker moved
    # Ship names from the SDE types where known; system names for all.
    assert Involvement.select().where(Involvement.solar_system_name.is_null()).count() == 0
    again = fill_from_tables(db)
    assert again.rows_changed == 0  # nothing left to change: processed_at stays


def test_names_and_regions_from_esi_each_id_asked_once(
    db, real_envelopes, fake_server, esi_client, fake_data
):
    tracked = tracked_ids(real_envelopes)
    stored = store_live(db, real_envelopes, tracked)
    now = dt.datetime.now(dt.UTC)
    TrackedCharacter.insert(
        character_id=next(iter(tracked)),
        corporation_id=next(iter(c for c, k in fake_data.entities.items() if k == "corporation")),
        tracked_since=now,
        updated_at=now,
    ).execute()
    result = enrich(db, esi_client)  # universe tables empty: systems come from ESI
    assert not result.esi_errors
    systems = {r[0] for r in Involvement.select(Involvement.solar_system_id).distinct().tuples()}
    assert result.systems_fetched == len(systems)
    assert len(fake_server.asked("/universe/systems/")) == len(systems)
    assert result.regions_filled == stored
    missing = Involvement.select().where(
        Involvement.region_name.is_null()
        | Involvement.solar_system_name.is_null()
        | Involvement.related_character_name.is_null()
    )
    assert missing.count() == 0
    unnamed_ships = Involvement.select().where(
        Involvement.ship_type_name.is_null(), Involvement.ship_type_id.is_null(False)
    )
    known_types = set(fake_data.types)
    for row in unnamed_ships:
        assert row.ship_type_id not in known_types
    first_tracked = next(iter(tracked))
    row = Involvement.select().where(Involvement.related_character_id == first_tracked).first()
    assert row.related_character_name == f"Character {row.related_character_id}"
    character = TrackedCharacter.get()
    assert character.character_name and character.corporation_name.startswith("Corporation ")
    asked = [i for _, _, ids in fake_server.asked("/universe/names/") for i in ids]
    # Bisection on unknown ids re-posts some ids; each id is resolved (cached) once.
    assert EntityName.select().count() == len(set(asked))
    fake_server.requests.clear()
    second = enrich(db, esi_client)
    assert fake_server.requests == []  # everything is cached, unknown ids too
    assert second.rows_changed == 0
    assert cached_names([30000142, row.related_character_id])[30000142] == "Jita"


def test_esi_down_then_back(db, real_envelopes, fake_server, esi_client, real_data_dir):
    envelopes = real_envelopes[:60]
    tracked = tracked_ids(envelopes)
    stored = store_live(db, envelopes, tracked)
    universe.import_directory(db, real_data_dir / "universe")
    fake_server.down = True
    down = enrich(db, esi_client)
    assert len(down.esi_errors) == 1 and "503" in down.esi_errors[0]
    assert len(fake_server.requests) == 4  # one request and its 3 retries, then given up
    assert down.regions_filled == stored  # the SDE part does not need ESI
    unnamed = Involvement.select().where(Involvement.related_character_name.is_null())
    assert unnamed.count() == stored
    before = {r.id: r.processed_at for r in Involvement.select()}
    fake_server.down = False
    back = enrich(db, esi_client)
    assert not back.esi_errors
    assert back.character_names_filled == stored
    assert Involvement.select().where(Involvement.related_character_name.is_null()).count() == 0
    for row in Involvement.select():
        assert row.processed_at > before[row.id]  # re-aggregation will pick them up


def test_error_limited_esi_is_waited_for_not_failed(
    db, real_envelopes, fake_server, esi_client, sleeps
):
    tracked = tracked_ids(real_envelopes[:5])
    store_live(db, real_envelopes[:5], tracked)
    fake_server.script(r"^/universe/names/", [(420, {"X-ESI-Error-Limit-Reset": "5"})])
    fake_server.script(r"^/universe/systems/", [(429, {"Retry-After": "2"}), (502, {})])
    result = enrich(db, esi_client)
    assert not result.esi_errors
    assert 5.0 in sleeps.waits and 2.0 in sleeps.waits
    assert Involvement.select().where(Involvement.related_character_name.is_null()).count() == 0
    assert Involvement.select().where(Involvement.region_id.is_null()).count() == 0


def test_unknown_system_is_cached_and_not_asked_again(db, real_envelopes, fake_server, esi_client):
    env = dict(real_envelopes[0])
    env["esi"] = {**env["esi"], "solar_system_id": 39999999}
    tracked = tracked_ids([env])
    store_live(db, [env], tracked)
    enrich(db, esi_client)
    assert len(fake_server.asked("/universe/systems/39999999/")) == 1
    assert UniverseSystem.select().count() == 0
    enrich(db, esi_client)
    assert len(fake_server.asked("/universe/systems/39999999/")) == 1
    assert Involvement.get().region_id is None


def test_enrich_inside_a_callers_transaction_keeps_it_open(db, real_envelopes, real_data_dir):
    universe.import_directory(db, real_data_dir / "universe")
    tracked = tracked_ids(real_envelopes[:3])
    with db.atomic():
        store_live(db, real_envelopes[:3], tracked)
        result = enrich(db, None)
        assert result.regions_filled == Involvement.select().count() > 0
    assert not db.is_closed()
    assert Involvement.select().where(Involvement.region_id.is_null()).count() == 0


def test_scheduler_step(db, real_envelopes, fake_server, real_data_dir):
    tracked = tracked_ids(real_envelopes[:5])
    store_live(db, real_envelopes[:5], tracked)
    universe.import_directory(db, real_data_dir / "universe")
    offline = scheduler_step(settings_of({"PERSISTENCE_ESI_ENRICHMENT": "false"}))(db)
    assert offline.regions_filled > 0 and fake_server.requests == []
    online = scheduler_step(settings_of({"ESI_BASE_URL": fake_server.url}))(db)
    assert online.names_fetched > 0 and online.character_names_filled > 0
    with pytest.raises(ConfigError, match="^PERSISTENCE_ESI_ENRICHMENT"):
        settings_of({"PERSISTENCE_ESI_ENRICHMENT": "maybe"})


def settings_of(values: dict[str, str]) -> Settings:
    return load_settings(environ=values, dotenv=Path("/nonexistent/.env"))


def test_row_filler_fills_rows_before_the_write(db, real_envelopes, real_data_dir, sde_regions):
    tracked = TrackedSet.of_ids(tracked_ids(real_envelopes))
    rows = [r for e in real_envelopes for r in involvement_rows(parse(e), tracked)]
    filler = RowFiller(db, refresh=dt.timedelta(0))
    filler(rows)  # no universe tables yet: nothing to fill, nothing breaks
    assert all(r.region_id is None for r in rows)
    universe.import_directory(db, real_data_dir / "universe")
    filler(rows)
    for row in rows:
        assert row.solar_system_id is not None
        assert (row.region_id, row.region_name) == sde_regions[row.solar_system_id]
        assert row.solar_system_name
    assert sum(1 for r in rows if r.ship_type_name) > len(rows) // 2
    write_rows(db, rows)
    assert fill_from_tables(db).regions_filled == 0  # already complete when written


def test_esi_refusing_requests_is_recorded_not_raised(
    db, real_envelopes, fake_server, esi_client, real_data_dir
):
    # A 403 is no outage (no retry helps), yet it must not stop enrichment from the tables,
    # nor the statistics job that runs enrichment first.
    stored = store_live(db, real_envelopes[:20], tracked_ids(real_envelopes[:20]))
    universe.import_directory(db, real_data_dir / "universe")
    fake_server.script(r"^/universe/", [(403, {})] * 50)
    result = enrich(db, esi_client)
    assert len(result.esi_errors) == 1 and "403" in result.esi_errors[0]
    assert result.regions_filled == stored
