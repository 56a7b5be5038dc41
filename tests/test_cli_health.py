"""`wn-persist health` without an API port: the readiness checks run in-process."""

from __future__ import annotations

from click.testing import CliRunner

from wn_persist_plugin.cli import main


def test_ready_when_the_schema_is_current(db_url):
    result = CliRunner().invoke(main, ["health"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ready (schema version ")


def test_not_ready_before_migrate(fresh_url):
    result = CliRunner().invoke(main, ["health"], env={"DATABASE_URL": fresh_url})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("not ready") and "schema" in lines[0]


def test_not_ready_when_the_database_is_gone(backend, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
        if backend == "sqlite"
        else "postgresql://postgres@127.0.0.1:1/none"
    )
    result = CliRunner().invoke(main, ["health"], env={"DATABASE_URL": url})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("not ready") and "database" in lines[0]
