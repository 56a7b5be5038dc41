"""The declaration table and the typed settings object built from it by `load_settings`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import wn_persist_plugin
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.settings import (
    GROUPS,
    MAX_EVE_ID,
    SETTINGS,
    SETTINGS_BY_NAME,
    ByteSize,
    Cron,
    DatabaseUrl,
    Day,
    EsiRoot,
    EveIds,
    Flag,
    HttpUrl,
    Integer,
    Seconds,
    Settings,
    Text,
    Token,
    WebhookUrl,
    WriterSettings,
    load_settings,
)

NO_DOTENV = Path("/nonexistent/.env")

DOCUMENTED_BEFORE = """
    ENABLE_PERSISTENCE DATABASE_URL POSTGRES_HOST POSTGRES_PORT POSTGRES_USER
    POSTGRES_PASSWORD POSTGRES_DB POSTGRES_POOL_SIZE PERSISTENCE_RETENTION_DAYS
    PERSISTENCE_AGGREGATION_SCHEDULE PERSISTENCE_QUEUE_SIZE PERSISTENCE_BATCH_SIZE
    PERSISTENCE_SHUTDOWN_TIMEOUT PERSISTENCE_ESI_ENRICHMENT ESI_BASE_URL ESI_TIMEOUT
    ESI_MAX_RETRIES ESI_MAX_WAIT SDE_BASE_URL ZKILL_HISTORY_URL TRACKED_CHARACTER_IDS
    MAP_URL MAP_NAME MAP_API_KEY MAP_REFRESH_SECONDS MAP_TIMEOUT R2Z2_BASE_URL
    R2Z2_REQUESTS_PER_SECOND R2Z2_NOT_FOUND_WAIT R2Z2_TIMEOUT R2Z2_MAX_BACKOFF
    USER_AGENT_CONTACT PROGRESS_INTERVAL_SECONDS HOST_CHECKPOINT_SECONDS
    HOST_FLUSH_TIMEOUT HOST_MAX_QUEUED
""".split()
"""Every variable README and docs/standalone.md named before the table existed."""

MAP = {"MAP_URL": "https://map.example", "MAP_NAME": "m", "MAP_API_KEY": "map-key-42"}


def load(**env: str) -> Settings:
    return load_settings(environ=env, dotenv=NO_DOTENV)


def attribute(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# -- the table ---------------------------------------------------------------------------


def test_every_existing_variable_is_declared_once():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert set(DOCUMENTED_BEFORE) <= set(names)
    for new in ("PERSISTENCE_HTTP_HOST", "PERSISTENCE_HTTP_PORT", "PERSISTENCE_API_TOKEN"):
        assert new in names


def test_every_attribute_exists_and_every_field_has_a_variable():
    attributes = {s.attribute for s in SETTINGS if s.attribute}
    defaults = Settings()
    for dotted in attributes:
        attribute(defaults, dotted)  # raises AttributeError when the table is wrong
    not_variables = {"writer.retry_initial", "writer.retry_max"}
    for f in dataclasses.fields(Settings):
        if f.name in GROUPS:
            for sub in dataclasses.fields(GROUPS[f.name]):
                dotted = f"{f.name}.{sub.name}"
                assert dotted in attributes or dotted in not_variables, dotted
        else:
            assert f.name in attributes, f.name


def test_defaults_of_the_table_are_the_defaults_of_the_object():
    assert load() == Settings()
    for setting in SETTINGS:
        if setting.attribute and setting.attribute != "database_url":
            assert attribute(Settings(), setting.attribute) == setting.default, setting.name
    assert Settings().database_url == "sqlite:///wn_persist.db"
    assert WriterSettings() == Settings().writer


def test_secret_flags():
    secrets = {s.name for s in SETTINGS if s.secret}
    assert secrets == {"DATABASE_URL", "POSTGRES_PASSWORD", "MAP_API_KEY", "PERSISTENCE_API_TOKEN",
                       "DISCORD_WEBHOOK_URL"}


def test_the_r2z2_client_agrees_with_the_table():
    from wn_persist_plugin.sources import r2z2

    assert SETTINGS_BY_NAME["R2Z2_BASE_URL"].default == r2z2.DEFAULT_BASE_URL
    kind = SETTINGS_BY_NAME["R2Z2_REQUESTS_PER_SECOND"].kind
    assert isinstance(kind, Integer) and kind.high == r2z2.MAX_REQUESTS_PER_SECOND


def test_nothing_else_reads_the_environment():
    package = Path(wn_persist_plugin.__file__).parent
    readers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    ]
    assert readers == ["settings.py"]


# -- typed values ------------------------------------------------------------------------


def test_values_are_typed_and_grouped():
    s = load(
        PERSISTENCE_QUEUE_SIZE="20",
        PERSISTENCE_SHUTDOWN_TIMEOUT="1.5",
        ESI_TIMEOUT="5",
        ESI_BASE_URL="http://127.0.0.1:9/latest/",
        TRACKED_CHARACTER_IDS="5, 7 5",
        R2Z2_REQUESTS_PER_SECOND="20",
        PERSISTENCE_ESI_ENRICHMENT="no",
        PERSISTENCE_HTTP_PORT="8081",
        USER_AGENT_CONTACT=" ops@example.org ",
        **MAP,
    )
    assert s.writer.queue_size == 20 and s.writer.shutdown_timeout == 1.5
    # ESI versions by X-Compatibility-Date now: the old `/latest` path is dropped.
    assert s.esi.timeout == 5.0 and s.esi.base_url == "http://127.0.0.1:9"
    assert s.host.static_ids == (5, 7)
    assert s.feed.requests_per_second == 20
    assert s.esi_enrichment is False
    assert s.http.port == 8081 and s.http.serve_port == 8081 and s.http.host == "127.0.0.1"
    assert s.user_agent_contact == "ops@example.org"
    assert s.map.configured and s.map.url == "https://map.example" and s.map.name == "m"


def test_http_api_defaults():
    s = load()
    assert s.http.host == "127.0.0.1" and s.http.port is None and s.http.api_token is None
    assert s.http.serve_port == 8080


def test_settings_are_frozen():
    s = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.retention_days = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.writer.queue_size = 1  # type: ignore[misc]
    assert not hasattr(s, "extra")


def test_precedence_config_over_environment_over_dotenv_over_default(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PERSISTENCE_QUEUE_SIZE=30\nHOST_MAX_QUEUED=40\nMAP_TIMEOUT=3\n")
    s = load_settings(
        overrides={"PERSISTENCE_QUEUE_SIZE": 10},
        environ={"PERSISTENCE_QUEUE_SIZE": "20", "HOST_MAX_QUEUED": "50"},
        dotenv=dotenv,
    )
    assert s.writer.queue_size == 10
    assert s.host.max_queued == 50
    assert s.map.timeout == 3.0
    assert s.feed.timeout == 10.0


def test_empty_values_mean_unset():
    blank = {s.name: "" for s in SETTINGS}
    assert load(**blank) == Settings()
    assert load(**{**blank, "POSTGRES_HOST": "db"}).database_url == (
        "postgresql://db:5432/wanderer_notifier"
    )


# -- validation ----------------------------------------------------------------------------

BAD_BY_KIND = {
    Flag: "maybe",
    Integer: "lots",
    Seconds: "soon",
    HttpUrl: "ftp://x",
    EsiRoot: "ftp://x/latest",
    Day: "2999-01-01",
    Cron: "every day",
    EveIds: "12,abc",
    DatabaseUrl: "mysql://u:pw@h/db",
    Token: "pw-too-short",
    WebhookUrl: "ftp://pw.example/api/webhooks/1/pw",
    ByteSize: "12XB",
}


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if not isinstance(s.kind, Text)], ids=lambda s: s.name
)
def test_every_checked_variable_refuses_a_bad_value_in_one_line(setting):
    env = {setting.name: BAD_BY_KIND[type(setting.kind)]}
    if setting.name.startswith("POSTGRES_"):
        env["POSTGRES_HOST"] = "h"
    with pytest.raises(ConfigError) as info:
        load(**env)
    assert info.value.variable == setting.name
    assert str(info.value).startswith(setting.name + ": ")
    assert "\n" not in str(info.value) and "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("PERSISTENCE_QUEUE_SIZE", "0", "0 is out of range (1..10000000)"),
        ("PERSISTENCE_BATCH_SIZE", "-1", "-1 is out of range (1..5000)"),
        ("PERSISTENCE_QUEUE_BYTES", "1KiB", "1KiB is out of range (1MiB..64GiB)"),
        ("PERSISTENCE_QUEUE_BYTES", "65GiB", "65GiB is out of range (1MiB..64GiB)"),
        ("PERSISTENCE_SHUTDOWN_TIMEOUT", "-1", "-1 is out of range (0..86400 seconds)"),
        ("HOST_MAX_QUEUED", "0", "0 is out of range"),
        ("ESI_TIMEOUT", "0", "0 is out of range"),
        ("R2Z2_REQUESTS_PER_SECOND", "21", "21 is out of range (1..20)"),
        ("MAP_REFRESH_SECONDS", "nan", "nan is out of range"),
        ("PERSISTENCE_HTTP_PORT", "0", "0 is out of range (1..65535)"),
        ("PERSISTENCE_HTTP_PORT", "65536", "65536 is out of range (1..65535)"),
        ("POSTGRES_POOL_SIZE", "1", "1 is out of range (2..1000): the writer keeps one"),
    ],
)
def test_out_of_range_values_are_refused_at_load(variable, value, problem):
    with pytest.raises(ConfigError) as info:
        load(**{variable: value})
    assert str(info.value).startswith(f"{variable}: {problem}")


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused(cron):
    with pytest.raises(ConfigError) as info:
        load(PERSISTENCE_AGGREGATION_SCHEDULE=cron)
    assert str(info.value) == (
        f"PERSISTENCE_AGGREGATION_SCHEDULE: '{cron}' never fires (no time matches within 5 years)"
    )


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "*/5 * * * *", "30 6 * * 1"])
def test_a_rare_cron_that_fires_is_accepted(cron):
    assert load(PERSISTENCE_AGGREGATION_SCHEDULE=cron).aggregation_schedule == cron


@pytest.mark.parametrize(
    "ids", ["123456789012345678901", str(MAX_EVE_ID + 1), "-3", "0", "1.5", "5,+7", "٣"]
)
def test_tracked_ids_must_be_eve_ids(ids):
    with pytest.raises(ConfigError) as info:
        load(TRACKED_CHARACTER_IDS=ids)
    assert info.value.variable == "TRACKED_CHARACTER_IDS"
    assert "is not a character id" in info.value.problem


def test_largest_eve_id_is_accepted():
    assert load(TRACKED_CHARACTER_IDS=f"1,{MAX_EVE_ID}").host.static_ids == (1, MAX_EVE_ID)


@pytest.mark.parametrize("missing", ["MAP_URL", "MAP_NAME", "MAP_API_KEY"])
def test_the_map_needs_all_three(missing):
    with pytest.raises(ConfigError) as info:
        load(**{k: v for k, v in MAP.items() if k != missing})
    assert info.value.variable == missing
    assert "map-key-42" not in str(info.value)


# -- secrets -----------------------------------------------------------------------------


def test_repr_masks_every_secret():
    secrets = {
        "POSTGRES_PASSWORD": "pg-pass-31337",
        "MAP_API_KEY": "map-key-31337",
        "PERSISTENCE_API_TOKEN": "api-token-31337-0123456789",
        "DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/1/hook-31337",
    }
    s = load(POSTGRES_HOST="h", POSTGRES_USER="u", MAP_URL="https://m", MAP_NAME="m", **secrets)
    shown = repr(s) + str(s) + repr(s.map) + repr(s.http) + repr(s.reports)
    for value in secrets.values():
        assert value not in shown
    assert "'***'" in repr(s.map) and "'***'" in repr(s.http)
    assert "postgresql://u:***@h:5432/wanderer_notifier" in repr(s)
    assert s.map.api_key == "map-key-31337" and s.http.api_token == "api-token-31337-0123456789"
    url = load(DATABASE_URL="postgresql://bob:hunter2@h/db")
    assert "hunter2" not in repr(url) and "bob:***@h/db" in repr(url)


def test_a_bad_secret_is_never_quoted():
    with pytest.raises(ConfigError) as info:
        load(POSTGRES_HOST="h", POSTGRES_PORT="hunter2")
    assert "hunter2" in str(info.value)  # not a secret: quoted to help
    with pytest.raises(ConfigError) as info:
        load(DATABASE_URL="mysql://bob:hunter2@h/db")
    assert str(info.value) == (
        "DATABASE_URL: 'mysql://bob:***@h/db' has an unsupported scheme "
        "(use sqlite:/// or postgresql://)"
    )


def test_unset_secrets_show_as_none():
    assert "api_key=None" in repr(load().map)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1048576", 2**20), ("1MiB", 2**20), ("256 mib", 256 * 2**20), ("2GiB", 2 * 2**30),
     ("64GiB", 64 * 2**30), ("4096KiB", 4 * 2**20)],
)  # fmt: skip
def test_queue_bytes_takes_bytes_or_binary_units(raw, value):
    assert load(PERSISTENCE_QUEUE_BYTES=raw).writer.queue_bytes == value


def test_queue_bytes_defaults_to_256_mib():
    assert load().writer.queue_bytes == WriterSettings().queue_bytes == 256 * 2**20
