"""Opening databases from settings, and the PostgreSQL test policy under CI."""

import os
import subprocess
import sys
from pathlib import Path

from playhouse.pool import PooledPostgresqlDatabase

from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_pool_size_gives_a_pooled_postgres_database():
    settings = load_settings(
        environ={"POSTGRES_HOST": "127.0.0.1", "POSTGRES_POOL_SIZE": "3"},
        dotenv=Path("/nonexistent"),
    )
    db = open_database(settings, bind=False)
    assert isinstance(db, PooledPostgresqlDatabase)
    assert db._max_connections == 3


def test_sqlite_gets_wal_and_busy_timeout(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}", bind=False)
    db.connect()
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 30000
    db.close()


def _run_postgres_tests(ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci, "WN_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/x"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_models.py::test_tracked_character_id_is_unique",
            "-rs",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unreachable_postgres_skips_locally_and_fails_under_ci():
    local = _run_postgres_tests("")
    assert local.returncode == 0, local.stdout
    assert "1 passed, 1 skipped" in local.stdout
    assert "PostgreSQL unreachable" in local.stdout
    ci = _run_postgres_tests("true")
    assert ci.returncode != 0
    assert "CI=true: PostgreSQL tests must run" in ci.stdout
