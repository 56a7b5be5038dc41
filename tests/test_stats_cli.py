"""`wn-persist aggregate`, `prune` and `stats` on both databases."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from reference_stats import envelope, store_envelopes

from wn_persist_plugin.cli import main
from wn_persist_plugin.db.models import KillmailStatistics, TrackedCharacter
from wn_persist_plugin.statistics.queries import efficiency, human_isk, top_ships

UTC = dt.UTC
PAST = dt.datetime.now(UTC) - dt.timedelta(days=1)


@pytest.fixture
def cli(db, db_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PERSISTENCE_RETENTION_DAYS", "30")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args))

    return run


@pytest.fixture
def history(db):
    now = dt.datetime.now(UTC)
    TrackedCharacter.create(
        character_id=101, character_name="Nimby Karen", tracked_since=now, updated_at=now
    )
    TrackedCharacter.create(
        character_id=102, character_name="Other Pilot", tracked_since=now, updated_at=now
    )
    mails = [
        envelope(1, "2025-03-03T10:00:00Z", victim=102, attackers=[101], value="1230000000.00"),
        envelope(2, "2025-03-04T10:00:00Z", victim=900, attackers=[101, 102], value="5.50"),
        envelope(3, "2025-03-10T10:00:00Z", victim=101, attackers=[102], value="410000000.00"),
        envelope(4, "2025-03-11T10:00:00Z", victim=901, attackers=[102], solo=True),
    ]
    store_envelopes(db, mails, {101, 102}, processed_at=PAST)
    return db


def test_aggregate_command(cli, history):
    result = cli("aggregate")
    assert result.exit_code == 0, result.output
    assert "daily" in result.output and "rebuild" in result.output
    assert KillmailStatistics.select().count() > 0
    result = cli("aggregate", "--period", "weekly", "--since", "2025-03-01")
    assert result.exit_code == 0, result.output
    assert result.output.count("incremental") == 1
    result = cli("aggregate", "--rebuild")
    assert result.exit_code == 0 and "rows written: 0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["aggregate", "--period", "yearly"], "--period"),
        (["aggregate", "--since", "2025-13-01"], "--since"),
        (["stats", "Nobody Atall"], "unknown character"),
        (["stats", "424242"], "unknown character"),
        (["stats", "101", "--period", "hourly"], "--period"),
        (["stats", "--top", "3", "--by", "points"], "--by"),
        (["stats"], "CHARACTER_ID_OR_NAME or --top"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, history, args, message):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_prune_command(cli, history):
    result = cli("prune", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "not aggregated yet" in result.output
    cli("aggregate")
    result = cli("prune", "--dry-run")
    assert "would delete 7 involvements" in result.output, result.output
    result = cli("prune")
    assert "deleted 7 involvements" in result.output, result.output
    assert KillmailStatistics.select().count() > 0


def test_stats_table_by_name_and_id(cli, history):
    cli("aggregate")
    result = cli("stats", "nimby karen", "--period", "weekly")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Nimby Karen (101): last 2 weekly periods"
    assert lines[1].split() == [
        "period",
        "kills",
        "deaths",
        "destroyed",
        "lost",
        "eff",
        "solo",
        "fb",
        "top",
        "ships",
    ]
    assert lines[2].split() == [
        "2025-03-03",
        "2",
        "0",
        "1.23B",
        "0",
        "100.0%",
        "0",
        "2",
        "11999",
        "x2",
    ]
    assert lines[3].split() == [
        "2025-03-10",
        "0",
        "1",
        "0",
        "410.00M",
        "0.0%",
        "0",
        "0",
        "587",
        "x1",
    ]
    assert lines[4] == (
        "values: 3 from zKillboard, 0 estimated from market prices, 0 without a value"
    )
    by_id = cli("stats", "101", "--period", "weekly", "--last", "1")
    assert [line.split() for line in by_id.output.splitlines()[2:-1]] == [lines[3].split()]
    assert by_id.output.splitlines()[-1].startswith("values: 1 from zKillboard, 0 ")


def test_stats_json(cli, history):
    cli("aggregate")
    result = cli("stats", "101", "--period", "monthly", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 1
    row = rows[0]
    assert row["period_start"] == "2025-03-01" and row["period_end"] == "2025-03-31"
    assert row["isk_destroyed"] == "1230000005.50" and row["isk_lost"] == "410000000.00"
    assert (row["kills_count"], row["deaths_count"], row["final_blows"]) == (2, 1, 2)
    assert row["ship_usage"] == {"11999": 2, "587": 1}
    assert row["region_activity"] == {"unknown": 3}
    assert row["character_name"] == "Nimby Karen"
    assert row["value_sources"] == {"zkb": 3, "esi_prices": 0, "none": 0}


def test_leaderboard(cli, history):
    cli("aggregate")
    by_kills = cli("stats", "--top", "5", "--period", "weekly", "--by", "kills")
    assert by_kills.exit_code == 0, by_kills.output
    lines = by_kills.output.splitlines()
    assert lines[0] == "weekly leaderboard by kills, 2025-03-10..2025-03-16"
    assert [line.split()[0:2] for line in lines[2:]] == [["1", "Other"], ["2", "Nimby"]]
    by_isk = cli("stats", "--top", "1", "--period", "monthly", "--json")
    rows = json.loads(by_isk.output)
    assert [r["character_id"] for r in rows] == [101]


def test_formatting_helpers():
    assert human_isk(0) == "0"
    assert human_isk(950) == "950"
    assert human_isk(12_345) == "12.3K"
    assert human_isk(4_560_000) == "4.56M"
    assert human_isk(1_234_567_890) == "1.23B"
    assert human_isk(2_500_000_000_000) == "2.50T"
    assert efficiency(0, 0) is None
    assert efficiency(3, 1) == 75.0
    assert top_ships({"1": 2, "5": 7, "3": 2, "9": 1}) == [(5, 7), (1, 2), (3, 2)]
