"""EVE's static data (the SDE, in Fuzzwork's CSV form): regions, constellations, solar
systems and types, imported into the `universe_*` tables; and lookups over them.

Files read from a directory (the names Fuzzwork publishes):
`mapRegions.csv`, `mapConstellations.csv`, `mapSolarSystems.csv` (required),
`invTypes.csv` + `invGroups.csv` (type names; when `invTypes.csv` is absent, `ships.json`
— `{"ships": [{"typeID", "name", "groupID", "group"}]}` — is used if present).
`download()` fetches the same files as `.csv.bz2` from `SDE_BASE_URL`
(default Fuzzwork's latest dump) and unpacks them.
"""

from __future__ import annotations

import bz2
import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from peewee import JOIN, Database

from ..db.connect import connected, write_transaction
from ..db.models import UniverseConstellation, UniverseRegion, UniverseSystem, UniverseType
from ..errors import StaticDataUnavailable, UniverseImportError
from ..redact import mask_url
from ..settings import DEFAULT_SDE_BASE_URL
from ..sources.http import make_session, status_cause, transport_cause

log = logging.getLogger(__name__)

REQUIRED_FILES = ("mapRegions.csv", "mapConstellations.csv", "mapSolarSystems.csv")
TYPE_FILES = ("invGroups.csv", "invTypes.csv")
DOWNLOAD_FILES = REQUIRED_FILES + TYPE_FILES
BATCH = 1000
SDE_SERVICE = "static data (SDE)"
DOWNLOAD_TIMEOUT = 60.0
"""Seconds to connect, and to wait for each piece of a file, when downloading."""
DOWNLOAD_CHUNK = 1 << 16


@dataclass
class ImportResult:
    counts: dict[str, int] = field(default_factory=dict)
    """Rows imported per table."""
    skipped: list[str] = field(default_factory=list)
    """Optional files that were absent."""


def _none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "None", "NULL", "\\N") else value


def _int(value: str | None) -> int | None:
    value = _none(value)
    return None if value is None else int(float(value))


def _float(value: str | None) -> float | None:
    value = _none(value)
    return None if value is None else float(value)


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for line_no, row in enumerate(reader, start=2):
            row["__line__"] = str(line_no)
            yield row


def _upsert(model: Any, rows: Iterable[dict[str, Any]]) -> int:
    pk = model._meta.primary_key
    columns = [f for f in model._meta.sorted_fields if f is not pk]
    count = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            model.insert_many(batch).on_conflict(conflict_target=[pk], preserve=columns).execute()
            batch.clear()

    for row in rows:
        batch.append(row)
        count += 1
        if len(batch) >= BATCH:
            flush()
    flush()
    return count


def _read(path: Path, convert: Any) -> Iterator[dict[str, Any]]:
    for row in _csv_rows(path):
        try:
            yield convert(row)
        except (KeyError, ValueError, TypeError) as exc:
            raise UniverseImportError(f"{path}:{row['__line__']}: bad row ({exc})") from None


def _region(row: dict[str, str]) -> dict[str, Any]:
    return {"region_id": int(row["regionID"]), "name": row["regionName"]}


def _constellation(row: dict[str, str]) -> dict[str, Any]:
    return {
        "constellation_id": int(row["constellationID"]),
        "region_id": int(row["regionID"]),
        "name": row["constellationName"],
    }


def _system(row: dict[str, str]) -> dict[str, Any]:
    return {
        "system_id": int(row["solarSystemID"]),
        "constellation_id": int(row["constellationID"]),
        "region_id": int(row["regionID"]),
        "name": row["solarSystemName"],
        "security": _float(row.get("security")),
    }


def _groups(path: Path) -> dict[int, tuple[str, int | None]]:
    groups: dict[int, tuple[str, int | None]] = {}
    if path.is_file():
        for row in _csv_rows(path):
            groups[int(row["groupID"])] = (row["groupName"], _int(row.get("categoryID")))
    return groups


def _types_from_csv(path: Path, groups: Mapping[int, tuple[str, int | None]]) -> Iterator[dict]:
    for row in _csv_rows(path):
        name = _none(row.get("typeName"))
        if name is None:
            continue
        try:
            group_id = _int(row.get("groupID"))
            type_id = int(row["typeID"])
        except (KeyError, ValueError) as exc:
            raise UniverseImportError(f"{path}:{row['__line__']}: bad row ({exc})") from None
        group_name, category = groups.get(group_id, (None, None)) if group_id else (None, None)
        yield {
            "type_id": type_id,
            "group_id": group_id,
            "group_name": group_name,
            "category_id": category,
            "name": name,
        }


def _types_from_ships(path: Path, groups: Mapping[int, tuple[str, int | None]]) -> Iterator[dict]:
    try:
        ships = json.loads(path.read_text(encoding="utf-8"))["ships"]
    except (OSError, ValueError, KeyError) as exc:
        raise UniverseImportError(f"{path}: unreadable ({exc})") from None
    for ship in ships:
        group_id = _int(str(ship.get("groupID")))
        known = groups.get(group_id) if group_id is not None else None
        group_name, category = known or (ship.get("group"), None)
        yield {
            "type_id": int(ship["typeID"]),
            "group_id": group_id,
            "group_name": ship.get("group") or group_name,
            "category_id": category,
            "name": str(ship["name"]),
        }


def import_directory(db: Database, directory: str | os.PathLike[str]) -> ImportResult:
    """Load the SDE CSV files in `directory` into the universe tables (upsert; re-running
    is safe and picks up renamed systems). All or nothing: one transaction."""
    folder = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise UniverseImportError(f"{folder}: missing {', '.join(missing)}")
    result = ImportResult()
    groups = _groups(folder / "invGroups.csv")
    if not groups:
        result.skipped.append("invGroups.csv")
    with connected(db), write_transaction(db):
        result.counts["universe_regions"] = _upsert(
            UniverseRegion, _read(folder / "mapRegions.csv", _region)
        )
        result.counts["universe_constellations"] = _upsert(
            UniverseConstellation, _read(folder / "mapConstellations.csv", _constellation)
        )
        result.counts["universe_systems"] = _upsert(
            UniverseSystem, _read(folder / "mapSolarSystems.csv", _system)
        )
        if (folder / "invTypes.csv").is_file():
            types = _types_from_csv(folder / "invTypes.csv", groups)
        elif (folder / "ships.json").is_file():
            result.skipped.append("invTypes.csv (used ships.json)")
            types = _types_from_ships(folder / "ships.json", groups)
        else:
            result.skipped.append("invTypes.csv")
            types = iter(())
        result.counts["universe_types"] = _upsert(UniverseType, types)
    return result


def download(
    directory: str | os.PathLike[str],
    base_url: str = DEFAULT_SDE_BASE_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    files: Iterable[str] = DOWNLOAD_FILES,
    contact: str | None = None,
) -> list[Path]:
    """Fetch the SDE CSV files as `<name>.bz2` from `base_url` into `directory`,
    decompressing while streaming (a file appears only once complete).

    Without `session`, one is made by `make_session` (our User-Agent with `contact`;
    connection errors and 5xx retried). A failed download raises `StaticDataUnavailable`
    (one line naming the URL and the cause; also a `UniverseImportError`) and leaves no
    partial file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    http = session or make_session(contact, timeout=timeout, accept=None)
    written = []
    for name in files:
        url = f"{base_url.rstrip('/')}/{name}.bz2"
        target = folder / name
        partial = folder / (name + ".part")
        try:
            _download_one(http, url, partial, timeout)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        written.append(target)
        log.info("downloaded %s", target)
    return written


def _download_one(http: requests.Session, url: str, partial: Path, timeout: float) -> None:
    where = f"{SDE_SERVICE}: {mask_url(url)}"
    try:
        with http.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise StaticDataUnavailable(
                    f"{where}: {status_cause(response)}", response.status_code
                )
            decompressor = bz2.BZ2Decompressor()
            with partial.open("wb") as out:
                for chunk in response.iter_content(chunk_size=DOWNLOAD_CHUNK):
                    try:
                        data = decompressor.decompress(chunk)
                    except (OSError, EOFError) as exc:
                        raise StaticDataUnavailable(f"{where}: not bzip2 data ({exc})") from None
                    out.write(data)
            if not decompressor.eof:
                raise StaticDataUnavailable(f"{where}: download cut off (bzip2 stream unfinished)")
    except requests.RequestException as exc:
        raise StaticDataUnavailable(f"{where}: {transport_cause(exc, timeout)}") from None
    except OSError as exc:  # writing the file
        raise UniverseImportError(f"{partial}: {exc}") from None


# -- lookups ------------------------------------------------------------------------------


def region_of_system(system_id: int) -> tuple[int, str | None] | None:
    """(region_id, region name) of a system from the universe tables, or None."""
    row = (
        UniverseSystem.select(UniverseSystem.region_id, UniverseRegion.name)
        .join(
            UniverseRegion,
            on=(UniverseRegion.region_id == UniverseSystem.region_id),
            join_type=JOIN.LEFT_OUTER,
        )
        .where(UniverseSystem.system_id == system_id)
        .tuples()
        .first()
    )
    return None if row is None else (int(row[0]), row[1])


def system_name(system_id: int) -> str | None:
    row = UniverseSystem.get_or_none(UniverseSystem.system_id == system_id)
    return None if row is None else row.name


def type_name(type_id: int) -> str | None:
    row = UniverseType.get_or_none(UniverseType.type_id == type_id)
    return None if row is None else row.name
