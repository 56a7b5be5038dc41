import subprocess
import sys
from pathlib import Path

import pytest

from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.redact import mask_url
from wn_persist_plugin.settings import load_settings


def settings(env, **kw):
    return load_settings(environ=env, dotenv=Path("/nonexistent/.env"), **kw)


def test_defaults_are_zero_config_sqlite():
    s = settings({})
    assert s.database_url == "sqlite:///wn_persist.db"
    assert s.enable_persistence is False
    assert s.retention_days == 180
    assert s.aggregation_schedule == "0 0 * * *"
    assert s.pool_size is None


def test_database_url_wins_over_postgres_settings():
    s = settings({"DATABASE_URL": "sqlite:////tmp/a.db", "POSTGRES_HOST": "db"})
    assert s.database_url == "sqlite:////tmp/a.db"


def test_postgres_variables_build_url():
    s = settings(
        {
            "POSTGRES_HOST": "db.example",
            "POSTGRES_USER": "wn",
            "POSTGRES_PASSWORD": "p@ss/word",
            "POSTGRES_DB": "kills",
            "POSTGRES_PORT": "6432",
            "POSTGRES_POOL_SIZE": "7",
        }
    )
    assert s.database_url == "postgresql://wn:p%40ss%2Fword@db.example:6432/kills"
    assert s.pool_size == 7
    assert "p%40ss" not in s.masked_database_url and "***" in s.masked_database_url


def test_dotenv_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PERSISTENCE_RETENTION_DAYS=30\nENABLE_PERSISTENCE=true\n")
    s = load_settings(environ={"PERSISTENCE_RETENTION_DAYS": "90"}, dotenv=env_file)
    assert s.retention_days == 90
    assert s.enable_persistence is True


def test_overrides_win_over_environment():
    s = settings({"ENABLE_PERSISTENCE": "false"}, overrides={"ENABLE_PERSISTENCE": True})
    assert s.enable_persistence is True


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"PERSISTENCE_RETENTION_DAYS": "abc"}, "PERSISTENCE_RETENTION_DAYS"),
        ({"PERSISTENCE_RETENTION_DAYS": "0"}, "PERSISTENCE_RETENTION_DAYS"),
        ({"ENABLE_PERSISTENCE": "maybe"}, "ENABLE_PERSISTENCE"),
        ({"PERSISTENCE_AGGREGATION_SCHEDULE": "every day"}, "PERSISTENCE_AGGREGATION_SCHEDULE"),
        ({"PERSISTENCE_AGGREGATION_SCHEDULE": "61 * * * *"}, "PERSISTENCE_AGGREGATION_SCHEDULE"),
        ({"DATABASE_URL": "mysql://u:pw@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u:pw@h:99999/db"}, "DATABASE_URL"),
        ({"POSTGRES_HOST": "h", "POSTGRES_PORT": "70000"}, "POSTGRES_PORT"),
        ({"POSTGRES_HOST": "h", "POSTGRES_PORT": "x"}, "POSTGRES_PORT"),
        ({"POSTGRES_POOL_SIZE": "-1"}, "POSTGRES_POOL_SIZE"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(variable + ":")
    assert "\n" not in str(info.value)
    assert "pw" not in str(info.value)


def test_mask_url():
    assert mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


def test_cli_bad_setting_is_one_line_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "wn_persist_plugin.cli", "db", "status"],
        cwd=tmp_path,
        env={"PERSISTENCE_RETENTION_DAYS": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wn-persist: error: PERSISTENCE_RETENTION_DAYS: 'abc' is not a whole number"
    ]
    assert "Traceback" not in result.stderr
