"""A command on a database that was never migrated says, in one line, to migrate."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from wn_persist_plugin.cli import main


@pytest.mark.parametrize(
    "args", [["aggregate"], ["stats", "101"], ["prune", "--dry-run"]], ids=" ".join
)
def test_unmigrated_database_asks_for_migrate(fresh_url, monkeypatch, tmp_path, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("wn-persist: error: database error")
    assert "run `wn-persist migrate`" in lines[0]


def test_migrate_then_the_command_works(fresh_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    result = runner.invoke(main, ["aggregate"])
    assert result.exit_code == 0, result.output
