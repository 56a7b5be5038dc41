"""SDE import from the real Fuzzwork CSV files, download from a local fake server, CLI."""

from __future__ import annotations

import csv
import shutil

import pytest
from click.testing import CliRunner
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin.cli import main
from wn_persist_plugin.db.models import UniverseRegion, UniverseSystem, UniverseType
from wn_persist_plugin.enrichment import static_data as universe
from wn_persist_plugin.sources.http import DEFAULT_RETRIES, user_agent


def _csv_count(path) -> int:
    with path.open(newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_import_real_sde(db, real_data_dir):
    folder = real_data_dir / "universe"
    result = universe.import_directory(db, folder)
    assert result.counts["universe_regions"] == _csv_count(folder / "mapRegions.csv") == 113
    assert result.counts["universe_constellations"] == 1175
    assert result.counts["universe_systems"] == _csv_count(folder / "mapSolarSystems.csv")
    assert result.counts["universe_types"] == 422  # ships.json stands in for invTypes.csv
    assert "invTypes.csv (used ships.json)" in result.skipped
    assert universe.region_of_system(30000142) == (10000002, "The Forge")  # Jita
    assert universe.system_name(31000005) == "Thera"
    ship = UniverseType.get_by_id(12044)
    assert (ship.name, ship.group_id, ship.group_name, ship.category_id) == (
        "Enyo",
        324,
        "Assault Frigate",
        6,
    )
    # Every system's region exists.
    orphans = UniverseSystem.select().where(
        UniverseSystem.region_id.not_in(UniverseRegion.select(UniverseRegion.region_id))
    )
    assert orphans.count() == 0
    again = universe.import_directory(db, folder)  # re-import is an upsert
    assert again.counts == result.counts
    assert UniverseSystem.select().count() == result.counts["universe_systems"]


def test_import_picks_up_renamed_entries(db, real_data_dir, tmp_path):
    folder = tmp_path / "sde"
    shutil.copytree(real_data_dir / "universe", folder)
    universe.import_directory(db, folder)
    text = (folder / "mapRegions.csv").read_text().replace(",The Forge,", ",The Furnace,")
    (folder / "mapRegions.csv").chmod(0o644)
    (folder / "mapRegions.csv").write_text(text)
    universe.import_directory(db, folder)
    assert universe.region_of_system(30000142) == (10000002, "The Furnace")


def test_missing_or_bad_files_are_named(db, real_data_dir, tmp_path):
    with pytest.raises(universe.UniverseImportError, match="mapRegions.csv"):
        universe.import_directory(db, tmp_path)
    for name in universe.REQUIRED_FILES:
        shutil.copy(real_data_dir / "universe" / name, tmp_path / name)
    (tmp_path / "mapRegions.csv").chmod(0o644)
    with (tmp_path / "mapRegions.csv").open("a") as fh:
        fh.write("notanumber,Broken\n")
    with pytest.raises(universe.UniverseImportError, match=r"mapRegions.csv:115"):
        universe.import_directory(db, tmp_path)
    assert UniverseRegion.select().count() == 0  # all or nothing


@pytest.mark.parametrize("layouts", [("csv", "bz2"), ("csv",), ("bz2",)], ids="+".join)
def test_download_from_fake_fuzzwork_then_import(db, fake_server, fake_data, tmp_path, layouts):
    # The new layout is plain CSV with a BOM and quoted fields; the old one bzip2.
    fake_server.sde_layouts = layouts
    base = fake_server.url + "/dump/latest"
    written = universe.download(tmp_path, base, contact="ops@example.invalid")
    fetched = fake_server.statuses(200)
    assert all(p.startswith("/dump/latest/csv/") for p in fetched) == (layouts[0] == "csv")
    assert len(fetched) == len(universe.DOWNLOAD_FILES)
    assert set(fake_server.user_agents()) == {user_agent("ops@example.invalid")}
    assert sorted(p.name for p in written) == sorted(universe.DOWNLOAD_FILES)
    assert not list(tmp_path.glob("*.part"))
    result = universe.import_directory(db, tmp_path)
    assert result.counts["universe_systems"] == len(fake_data.systems)
    assert result.counts["universe_types"] == len(fake_data.types)  # from invTypes.csv
    assert UniverseType.get_by_id(12044).group_name == "Assault Frigate"  # via invGroups.csv
    assert universe.type_name(12044) == "Enyo"


def test_download_failure_names_the_url_and_leaves_nothing(fake_server, tmp_path):
    # Only the old layout is served, and the session retries a 503 DEFAULT_RETRIES times;
    # one more makes it fail: both URLs tried are named, in one line.
    fake_server.sde_layouts = ("bz2",)
    fake_server.script(r"mapSolarSystems\.csv\.bz2", [(503, {})] * (DEFAULT_RETRIES + 1))
    with pytest.raises(
        universe.UniverseImportError,
        match=r"^static data \(SDE\): mapSolarSystems.csv: tried http://\S+"
        r"/dump/latest/csv/mapSolarSystems.csv: HTTP 404[^;]*; http://\S+"
        r"/dump/latest/mapSolarSystems.csv.bz2: HTTP 503[^;]*$",
    ):
        universe.download(tmp_path, fake_server.url + "/dump/latest")
    assert len(fake_server.asked("/dump/latest/mapSolarSystems.csv.bz2")) == DEFAULT_RETRIES + 1
    assert not (tmp_path / "mapSolarSystems.csv").exists()
    assert not list(tmp_path.glob("*.part"))


def test_cli_universe_import(db_url, real_data_dir, fake_server, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    result = runner.invoke(main, ["universe", "import", "--from", str(real_data_dir / "universe")])
    assert result.exit_code == 0, result.output
    assert "universe_systems:" in result.output and "8437" in result.output
    monkeypatch.setenv("SDE_BASE_URL", fake_server.url + "/dump/latest")
    result = runner.invoke(main, ["universe", "import", "--download", "--to", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "invTypes.csv").is_file()
    result = runner.invoke(main, ["universe", "import"])
    assert result.exit_code == 2 and "either --from DIR or --download" in result.output
    monkeypatch.setenv("SDE_BASE_URL", "nonsense")
    result = runner.invoke(main, ["universe", "import", "--download"])
    assert result.exit_code == 2 and "SDE_BASE_URL" in result.output
    result = runner.invoke(main, ["db", "status"])  # a bad setting stops every command
    assert result.exit_code == 2 and "SDE_BASE_URL" in result.output
    monkeypatch.delenv("SDE_BASE_URL")
    result = runner.invoke(main, ["universe", "import", "--from", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "missing" in result.output
