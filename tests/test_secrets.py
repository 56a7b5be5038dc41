"""Database passwords never show: not in error lines, masked URLs or repr(Settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.redact import mask_url
from wn_persist_plugin.settings import Settings, load_settings

SECRET = "se/cr#e?t@x:y"  # unencoded characters URL parsers mistake for later parts


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://bob:se/cret@127.0.0.1/db", "postgresql://bob:***@127.0.0.1/db"),
        ("postgresql://bob:se#cr?et@h:5432/db", "postgresql://bob:***@h:5432/db"),
        ("postgresql://bob:a@b@h/db", "postgresql://bob:***@h/db"),
        (f"postgres://bob:{SECRET}@h:5432/db", "postgres://bob:***@h:5432/db"),
        (
            "postgresql+pool://u:p@h/db?sslmode=require",
            "postgresql+pool://u:***@h/db?sslmode=require",
        ),
        ("postgresql://u:p%2F@h/db", "postgresql://u:***@h/db"),
        ("postgresql://bob@h/db", "postgresql://bob@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_mask_url_masks_any_password(url, masked):
    assert mask_url(url) == masked


def test_config_error_for_a_password_with_a_slash_shows_no_password(tmp_path: Path):
    url = f"postgresql://bob:{SECRET}@127.0.0.1/db"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DATABASE_URL": url}, dotenv=tmp_path / "none.env")
    assert info.value.variable == "DATABASE_URL"
    assert "cr" not in str(info.value) and "***" in str(info.value)
    assert "percent-encode" in str(info.value)


def test_repr_of_settings_never_shows_the_url(tmp_path: Path):
    settings = load_settings(
        environ={"DATABASE_URL": "postgresql://bob:hunter2@h/db"}, dotenv=tmp_path / "none.env"
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert "hunter2" not in settings.masked_database_url
    assert "hunter2" not in repr(Settings(database_url="postgresql://a:hunter2@h/d"))
