"""Shared fixtures: every data-layer test runs on SQLite and on PostgreSQL.

PostgreSQL: the server at WN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
Each test session creates its own throwaway database there and drops it at the end.
When the server is unreachable the PostgreSQL half skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database

ADMIN_URL = os.environ.get("WN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
DATA_ARCHIVE = Path(__file__).resolve().parent / "data" / "real-data.tar.xz"
"""The real killmails and static data, kept in the repository (see tests/data/README.md)."""
BACKENDS = ["sqlite", "postgresql"]


def _admin_connection():
    import psycopg2

    conn = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    return conn


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL unreachable at {ADMIN_URL}: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


class PostgresServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create_database(self) -> str:
        name = f"wn_test_{uuid.uuid4().hex[:12]}"
        conn = _admin_connection()
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        self.created.append(name)
        base = ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_all(self) -> None:
        conn = _admin_connection()
        with conn.cursor() as cur:
            for name in self.created:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        _admin_connection().close()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        _postgres_unavailable(str(exc).strip().splitlines()[0] if str(exc) else repr(exc))
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new, empty (unmigrated) database of the current backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture(scope="session")
def _migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'shared.db'}"}


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, _migrated_urls: dict[str, str]) -> str:
    """URL of a migrated database of the current backend, shared by the session."""
    if backend not in _migrated_urls:
        url = request.getfixturevalue("postgres_server").create_database()
        _migrated_urls[backend] = url
    url = _migrated_urls[backend]
    db = open_database(url, bind=False)
    migrator.migrate(db)
    db.close()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database bound to the models, emptied after the test."""
    database = open_database(db_url)
    database.connect(reuse_if_open=True)
    yield database
    database.close()
    database.connect()
    for table in database.get_tables():
        if table != migrator.HISTORY_TABLE:
            database.execute_sql(f'DELETE FROM "{table}"')
    database.close()


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data, extracted once per session from the repository's archive."""
    target = tmp_path_factory.mktemp("real-data")
    with tarfile.open(DATA_ARCHIVE) as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def real_envelopes(real_data_dir: Path) -> list[dict]:
    """The 529 real killmails as R2Z2 envelopes."""
    import json

    path = real_data_dir / "killmails" / "real_killmails.jsonl"
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]
