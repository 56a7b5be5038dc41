"""Every command validates every setting once at startup, and every id argument or option
is an EVE id: a bad value is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from wn_persist_plugin.cli import main
from wn_persist_plugin.settings import MAX_EVE_ID, SETTINGS


@pytest.fixture
def invoke(monkeypatch, tmp_path):
    """Runs the CLI in an empty directory with only the given variables set."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, **env: str):
        clean: dict[str, str | None] = dict.fromkeys((s.name for s in SETTINGS), None)
        clean.update(env)
        return CliRunner().invoke(main, list(args), env=clean)

    return run


def one_error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert lines[0].startswith("wn-persist: error: ")
    return lines[0].removeprefix("wn-persist: error: ")


BAD_SETTINGS = [
    ("PERSISTENCE_QUEUE_SIZE", "0", "PERSISTENCE_QUEUE_SIZE: 0 is out of range (1..10000000)"),
    ("PERSISTENCE_BATCH_SIZE", "-1", "PERSISTENCE_BATCH_SIZE: -1 is out of range (1..5000)"),
    (
        "PERSISTENCE_SHUTDOWN_TIMEOUT",
        "-1",
        "PERSISTENCE_SHUTDOWN_TIMEOUT: -1 is out of range (0..86400 seconds)",
    ),
    (
        "PERSISTENCE_AGGREGATION_SCHEDULE",
        "0 0 31 2 *",
        "PERSISTENCE_AGGREGATION_SCHEDULE: '0 0 31 2 *' never fires",
    ),
    (
        "TRACKED_CHARACTER_IDS",
        "123456789012345678901",
        "TRACKED_CHARACTER_IDS: '123456789012345678901' is not a character id: out of range",
    ),
    ("MAP_URL", "https://map.example", "MAP_NAME: is not set (MAP_URL set"),
    ("PERSISTENCE_HTTP_PORT", "http", "PERSISTENCE_HTTP_PORT: 'http' is not a whole number"),
]


@pytest.mark.parametrize(("variable", "value", "line"), BAD_SETTINGS)
@pytest.mark.parametrize(
    "command",
    [
        ["db", "status"],
        ["migrate"],
        ["aggregate"],
        ["prune", "--dry-run"],
        ["stats", "--top", "3"],
        ["enrich", "--no-esi"],
        ["run", "--track", "5"],
    ],
    ids=" ".join,
)
def test_any_command_refuses_a_bad_setting_in_one_line(invoke, command, variable, value, line):
    result = invoke(*command, **{variable: value})
    assert one_error_line(result).startswith(line)


def test_help_needs_no_valid_setting(invoke):
    result = invoke("db", "status", "--help", PERSISTENCE_QUEUE_SIZE="0")
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["run", "--track", "123456789012345678901"],
            "--track: '123456789012345678901' is not a character id: out of range "
            f"(1..{MAX_EVE_ID})",
        ),
        (["run", "--track", "0"], "--track: '0' is not a character id: out of range"),
        (["run", "--track", "12x"], "--track: '12x' is not a character id"),
        (["backfill", "--track", "-3", "x.json"], "--track: '-3' is not a character id"),
        (["backfill", "--track=-3", "x.json"], "--track: '-3' is not a character id"),
        (["backfill", "--track", "1e5", "x.json"], "--track: '1e5' is not a character id"),
        (["stats", "--", "-5"], "CHARACTER: '-5' is not a character id"),
        (["stats", "--last", "0", "5"], "--last: 0 is not in the range 1<=x<=1000."),
        (["stats", "--top", "0"], "--top: 0 is not in the range 1<=x<=1000."),
        (["stats", "--top", "3", "--period", "yearly"], "--period: 'yearly' is not one of"),
        (["stats", "--top", "3", "--by", "points"], "--by: 'points' is not one of"),
        (["aggregate", "--since", "2025-02-30"], "--since: '2025-02-30' does not match"),
        (["aggregate", "--period", "hourly"], "--period: 'hourly' is not one of"),
    ],
)
def test_bad_arguments_are_one_line(invoke, args, line):
    assert one_error_line(invoke(*args)).startswith(line)


def test_run_words_the_missing_tracked_list_itself(invoke):
    assert one_error_line(invoke("run")) == (
        "TRACKED_CHARACTER_IDS: no tracked characters: set MAP_URL, MAP_NAME and MAP_API_KEY, "
        "or TRACKED_CHARACTER_IDS, or pass --track ID"
    )


@pytest.mark.parametrize("character", [str(MAX_EVE_ID + 1), "123456789012345678901"])
def test_stats_refuses_an_id_out_of_range_on_both_databases(invoke, db, db_url, character):
    result = invoke("stats", character, DATABASE_URL=db_url)
    assert one_error_line(result).startswith(
        f"CHARACTER: '{character}' is not a character id: out of range"
    )


def test_stats_largest_id_is_an_unknown_character_on_both_databases(invoke, db, db_url):
    result = invoke("stats", str(MAX_EVE_ID), DATABASE_URL=db_url)
    assert one_error_line(result) == f"unknown character '{MAX_EVE_ID}': " + (
        "no tracked character or statistics"
    )


def test_stats_takes_a_name_too(invoke, db, db_url):
    result = invoke("stats", "Nobody At All", DATABASE_URL=db_url)
    assert one_error_line(result).startswith("unknown character 'Nobody At All'")
