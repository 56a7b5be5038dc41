"""Fixtures for the HTTP API tests: a database per backend seeded once from the real
corpus through the library path and aggregated, and an in-process falcon client over it.

Tracked: the participants whose id is not 1 modulo 3, so the corpus has fleet kills with
several tracked attackers and mails with tracked pilots on both sides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from peewee import Database
from prometheus_client import CollectorRegistry

from wn_persist_plugin.api.app import create_app
from wn_persist_plugin.api.metrics import make_registry
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.models import TrackedCharacter
from wn_persist_plugin.ingest.library import maybe_persist_killmail
from wn_persist_plugin.settings import Settings, load_settings
from wn_persist_plugin.statistics.aggregation import aggregate

BACKENDS = ["sqlite", "postgresql"]
TOKEN = "s3cret-token-for-tests-0123456789"


def esi_of(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    return envelope.get("esi") or envelope


def participants(envelope: Mapping[str, Any]) -> tuple[int | None, set[int]]:
    esi = esi_of(envelope)
    victim = esi.get("victim", {}).get("character_id")
    attackers = {a["character_id"] for a in esi.get("attackers", []) if a.get("character_id")}
    return victim, attackers


def tracked_of(envelopes: list[Mapping[str, Any]]) -> set[int]:
    everyone: set[int] = set()
    for env in envelopes:
        victim, attackers = participants(env)
        everyone |= attackers | ({victim} if victim else set())
    return {cid for cid in everyone if cid % 3 != 1}


def value_of(envelope: Mapping[str, Any]) -> Decimal:
    zkb = envelope.get("zkb") or {}
    if zkb.get("totalValue") is None:
        return Decimal("0.00")
    return Decimal(repr(float(zkb["totalValue"]))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def track(tracked: set[int]) -> None:
    now = dt.datetime.now(dt.UTC)
    TrackedCharacter.insert_many(
        [
            {
                "character_id": cid,
                "character_name": f"Pilot {cid}",
                "corporation_id": 98000001,
                "corporation_ticker": "TEST",
                "tracked_since": now,
                "updated_at": now,
            }
            for cid in sorted(tracked)
        ]
    ).execute()


def persist(envelopes: list[Mapping[str, Any]], tracked: set[int]) -> None:
    names = {cid: f"Pilot {cid}" for cid in tracked}
    for env in envelopes:
        result = maybe_persist_killmail(env, names)
        assert result.status in ("stored", "ignored"), result


def new_database_url(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'api.db'}"
    return request.getfixturevalue("postgres_server").create_database()


def settings_for(url: str, **env: str) -> Settings:
    return load_settings(environ={"DATABASE_URL": url, **env}, dotenv=Path("/nonexistent"))


@dataclass
class Seeded:
    backend: str
    url: str
    db: Database
    client: testing.TestClient
    registry: CollectorRegistry
    tracked: set[int]
    envelopes: list[Mapping[str, Any]]


@pytest.fixture(scope="module", params=BACKENDS, name="seeded")
def seeded_database(
    request: pytest.FixtureRequest,
    real_envelopes: list[dict],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Seeded]:
    """The real corpus stored and aggregated, served in process (one per backend)."""
    url = new_database_url(request.param, request, tmp_path_factory.mktemp("api"))
    db = open_database(url)
    migrator.migrate(db)
    db.connect(reuse_if_open=True)
    tracked = tracked_of(real_envelopes)
    track(tracked)
    persist(real_envelopes, tracked)
    aggregate(db)
    api_db = open_database(url, bind=False)
    registry = make_registry(api_db)
    client = testing.TestClient(create_app(settings_for(url), api_db, registry))
    yield Seeded(request.param, url, db, client, registry, tracked, real_envelopes)
    api_db.close()
    db.close()
