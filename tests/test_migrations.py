"""Numbered migrations: up, down, up again, `--to`, concurrency, status, on both databases."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from wn_persist_plugin.cli import main
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.db.status import database_status

APP_TABLES = {"tracked_characters", "killmails", "killmail_statistics"}


def latest() -> int:
    return max(int(p.name[:4]) for p in migrator.migrations_dir().glob("[0-9]*.py"))


def test_up_down_up(fresh_url):
    db = open_database(fresh_url, bind=False)
    assert migrator.state(db).version == 0
    ran = migrator.migrate(db)
    assert ran and ran[0] == "0001_initial"
    assert APP_TABLES <= set(db.get_tables())
    assert migrator.migrate(db) == []  # safe to run twice
    migrator.migrate(db, to=0)
    assert not APP_TABLES & set(db.get_tables())
    assert migrator.state(db).version == 0
    migrator.migrate(db)
    assert migrator.state(db).version == latest()
    assert APP_TABLES <= set(db.get_tables())
    db.close()


def test_to_moves_one_step_at_a_time(fresh_url):
    db = open_database(fresh_url, bind=False)
    migrator.migrate(db, to=1)
    assert migrator.state(db).version == 1
    migrator.migrate(db)
    expected = [m for m in reversed(migrator.state(db).applied) if not m.startswith("0001")]
    assert migrator.migrate(db, to=1) == expected
    assert migrator.state(db).version == 1
    with pytest.raises(migrator.MigrationTargetError):
        migrator.migrate(db, to=999)
    db.close()


def test_concurrent_migrate_processes(fresh_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": fresh_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wn_persist_plugin.cli", "migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 4, results
    db = open_database(fresh_url, bind=False)
    state = migrator.state(db)
    assert state.version == latest() and not state.pending
    names = [r[0] for r in db.execute_sql(f"SELECT name FROM {migrator.HISTORY_TABLE}")]
    assert sorted(names) == sorted(set(names))  # each migration recorded once
    db.close()


def test_status_reports_version_rows_and_masks_password(db, db_url):
    status = database_status(db, db_url.replace("postgres@", "postgres:hunter2@"))
    assert status.version == latest() and status.pending == []
    assert status.row_counts["killmails"] == 0
    assert status.size_bytes and status.size_bytes > 0
    assert "hunter2" not in status.url


def test_cli_migrate_and_status(fresh_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    runner = CliRunner()
    result = runner.invoke(main, ["db", "status"])
    assert result.exit_code == 0, result.output
    assert "schema version:      0 of" in result.output
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "ran 0001_initial" in result.output
    result = runner.invoke(main, ["db", "status"])
    assert f"schema version:      {latest()} of {latest()}" in result.output
    assert "pending migrations:  none" in result.output
    result = runner.invoke(main, ["migrate", "--to", "999"])
    assert result.exit_code == 2


def test_zero_config_uses_sqlite_in_current_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "POSTGRES_"))}
    result = subprocess.run(
        [sys.executable, "-m", "wn_persist_plugin.cli", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "wn_persist.db").is_file()
