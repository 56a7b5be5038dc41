"""Filling in what the live feed leaves empty: regions and names.

`enrich(db, esi)` runs in commands and in the scheduler, never on the live write path:
1. with an ESI client: systems the universe tables do not know are fetched from
   `/universe/systems` (+ constellation, region) and stored there; ids without a name
   (characters, ship types, tracked characters' corporations and alliances) are resolved
   with `POST /universe/names/` in batches of 1,000 and stored in `entity_names`. Every id
   is asked once: an id ESI does not know is cached with no name.
2. always: set-based UPDATEs fill `killmails.region_id` / `region_name`,
   `solar_system_name`, `ship_type_name` and `related_character_name` (and the names in
   `tracked_characters`) from the universe tables and the names cache.

Every killmails row changed gets `processed_at = now`, so incremental aggregation
re-aggregates its periods. ESI being down is reported in the result, never raised: rows
stay empty and are filled on a later run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from peewee import Database, chunked
from requests import RequestException

from ..db.connect import connected, write_transaction
from ..db.dialect import placeholders
from ..db.models import (
    EntityName,
    Involvement,
    UniverseConstellation,
    UniverseRegion,
    UniverseSystem,
    UniverseType,
)
from ..errors import EsiError, EsiNotFound
from ..settings import Settings
from ..sources.esi import EsiClient

if TYPE_CHECKING:
    from ..ingest.rows import InvolvementRow

log = logging.getLogger(__name__)

CATEGORY_SYSTEM = "solar_system"
"""The names cache's category for systems learned from `/universe/systems/` (ESI's own
name for the category, as `/universe/names/` answers it)."""


@dataclass
class EnrichResult:
    regions_filled: int = 0
    region_names_filled: int = 0
    system_names_filled: int = 0
    ship_names_filled: int = 0
    character_names_filled: int = 0
    tracked_names_filled: int = 0
    systems_fetched: int = 0
    names_fetched: int = 0
    names_unknown: int = 0
    esi_errors: list[str] = field(default_factory=list)
    """Why ESI could not be used this time (rows are filled on a later run)."""

    @property
    def rows_changed(self) -> int:
        return (
            self.regions_filled
            + self.region_names_filled
            + self.system_names_filled
            + self.ship_names_filled
            + self.character_names_filled
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _execute(db: Database, sql: str, params: Iterable[Any] = ()) -> int:
    cursor = db.execute_sql(placeholders(db, sql), tuple(params))
    return max(cursor.rowcount, 0)


_KILLMAIL_FILLS = (
    # (counter, column, id column, source table, its key, its value column). Order matters:
    # the region comes from the system first, then the region's name (also for rows that
    # arrived with an id only); the universe tables win over cached ESI names.
    (
        "regions_filled",
        "region_id",
        "solar_system_id",
        "universe_systems",
        "system_id",
        "region_id",
    ),
    ("region_names_filled", "region_name", "region_id", "universe_regions", "region_id", "name"),
    (
        "system_names_filled",
        "solar_system_name",
        "solar_system_id",
        "universe_systems",
        "system_id",
        "name",
    ),
    (
        "system_names_filled",
        "solar_system_name",
        "solar_system_id",
        "entity_names",
        "entity_id",
        "name",
    ),
    ("ship_names_filled", "ship_type_name", "ship_type_id", "universe_types", "type_id", "name"),
    ("ship_names_filled", "ship_type_name", "ship_type_id", "entity_names", "entity_id", "name"),
    (
        "character_names_filled",
        "related_character_name",
        "related_character_id",
        "entity_names",
        "entity_id",
        "name",
    ),
)


def _fill_killmails(db: Database, result: EnrichResult, now: dt.datetime) -> None:
    stamp = Involvement.processed_at.db_value(now)
    for counter, column, id_column, table, key, value in _KILLMAIL_FILLS:
        filled = _fill_name(db, column, id_column, table, key, stamp, value)
        setattr(result, counter, getattr(result, counter) + filled)


def _fill_name(
    db: Database,
    column: str,
    id_column: str,
    table: str,
    key: str,
    stamp: Any,
    value: str = "name",
) -> int:
    """Fill `killmails.column` where it is NULL from `table.value` (when that is known),
    joined on `table.key = killmails.id_column`; changed rows get `processed_at = stamp`."""
    return _execute(
        db,
        f"""UPDATE killmails SET
              {column} = (SELECT u.{value} FROM {table} u WHERE u.{key} = killmails.{id_column}),
              processed_at = ?
            WHERE {column} IS NULL AND EXISTS
              (SELECT 1 FROM {table} u
               WHERE u.{key} = killmails.{id_column} AND u.{value} IS NOT NULL)""",
        [stamp],
    )


def _fill_tracked(db: Database, result: EnrichResult, now: dt.datetime) -> None:
    stamp = Involvement.processed_at.db_value(now)
    for column, id_column in (
        ("character_name", "character_id"),
        ("corporation_name", "corporation_id"),
        ("alliance_name", "alliance_id"),
    ):
        result.tracked_names_filled += _execute(
            db,
            f"""UPDATE tracked_characters SET
                  {column} = (SELECT n.name FROM entity_names n
                              WHERE n.entity_id = tracked_characters.{id_column}),
                  updated_at = ?
                WHERE {column} IS NULL AND EXISTS
                  (SELECT 1 FROM entity_names n
                   WHERE n.entity_id = tracked_characters.{id_column} AND n.name IS NOT NULL)""",
            [stamp],
        )


def fill_from_tables(db: Database, now: dt.datetime | None = None) -> EnrichResult:
    """The set-based part alone: fill regions and names from what the database knows."""
    result = EnrichResult()
    now = now or _now()
    with connected(db), write_transaction(db):
        _fill_killmails(db, result, now)
        _fill_tracked(db, result, now)
    return result


# -- ESI ----------------------------------------------------------------------------------

_UNKNOWN_SYSTEMS_SQL = """
SELECT DISTINCT k.solar_system_id FROM killmails k
WHERE k.solar_system_id IS NOT NULL
  AND (k.region_id IS NULL OR k.solar_system_name IS NULL)
  AND NOT EXISTS (SELECT 1 FROM universe_systems s WHERE s.system_id = k.solar_system_id)
  AND NOT EXISTS (SELECT 1 FROM entity_names n WHERE n.entity_id = k.solar_system_id)
ORDER BY k.solar_system_id"""

_UNNAMED_IDS_SQL = """
SELECT related_character_id FROM killmails WHERE related_character_name IS NULL
UNION
SELECT ship_type_id FROM killmails k WHERE k.ship_type_name IS NULL
  AND k.ship_type_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM universe_types t WHERE t.type_id = k.ship_type_id)
UNION
SELECT character_id FROM tracked_characters WHERE character_name IS NULL
UNION
SELECT corporation_id FROM tracked_characters
  WHERE corporation_name IS NULL AND corporation_id IS NOT NULL
UNION
SELECT alliance_id FROM tracked_characters
  WHERE alliance_name IS NULL AND alliance_id IS NOT NULL"""


def _store_names(
    rows: dict[int, tuple[str | None, str | None]], now: dt.datetime, db: Database
) -> None:
    if not rows:
        return
    data = [
        {"entity_id": i, "name": name, "category": category, "fetched_at": now}
        for i, (name, category) in rows.items()
    ]
    with write_transaction(db):
        for batch in chunked(data, 1000):
            EntityName.insert_many(batch).on_conflict(
                conflict_target=[EntityName.entity_id],
                preserve=[EntityName.name, EntityName.category, EntityName.fetched_at],
            ).execute()


def _known(model: Any, key: Any, value: int) -> bool:
    return model.select().where(key == value).exists()


def fetch_systems(db: Database, esi: EsiClient, result: EnrichResult, now: dt.datetime) -> None:
    """Systems on stored mails that the universe tables lack: fetch system, constellation
    and region from ESI and store them. An unknown system is cached as nameless."""
    ids = [int(r[0]) for r in db.execute_sql(_UNKNOWN_SYSTEMS_SQL).fetchall()]
    for system_id in ids:
        try:
            system = esi.system(system_id)
        except EsiNotFound:
            _store_names({system_id: (None, CATEGORY_SYSTEM)}, now, db)
            continue
        constellation_id = int(system["constellation_id"])
        if not _known(
            UniverseConstellation, UniverseConstellation.constellation_id, constellation_id
        ):
            constellation = esi.constellation(constellation_id)
            region_id = int(constellation["region_id"])
            if not _known(UniverseRegion, UniverseRegion.region_id, region_id):
                region = esi.region(region_id)
                UniverseRegion.insert(region_id=region_id, name=str(region["name"])).on_conflict(
                    conflict_target=[UniverseRegion.region_id], preserve=[UniverseRegion.name]
                ).execute()
            UniverseConstellation.insert(
                constellation_id=constellation_id,
                region_id=region_id,
                name=str(constellation["name"]),
            ).on_conflict_ignore().execute()
        else:
            region_id = UniverseConstellation.get_by_id(constellation_id).region_id
        UniverseSystem.insert(
            system_id=system_id,
            constellation_id=constellation_id,
            region_id=region_id,
            name=str(system["name"]),
            security=system.get("security_status"),
        ).on_conflict_ignore().execute()
        result.systems_fetched += 1


def fetch_names(db: Database, esi: EsiClient, result: EnrichResult, now: dt.datetime) -> None:
    """Resolve ids without a name through `POST /universe/names/` (batched) into the
    names cache; ids already cached (named or not) are never asked again."""
    wanted = {int(r[0]) for r in db.execute_sql(_UNNAMED_IDS_SQL).fetchall() if r[0] is not None}
    if not wanted:
        return
    cached: set[int] = set()
    for chunk in chunked(sorted(wanted), 1000):
        query = EntityName.select(EntityName.entity_id).where(EntityName.entity_id.in_(chunk))
        cached.update(int(cid) for (cid,) in cast(Iterable[tuple[int]], query.tuples()))
    ask = sorted(wanted - cached)
    if not ask:
        return
    # Resolve and store batch by batch, so an outage midway keeps what was learned.
    for batch in chunked(ask, 1000):
        answer = esi.names(batch)
        rows: dict[int, tuple[str | None, str | None]] = dict(answer.names.items())
        rows.update({i: (None, None) for i in answer.unknown})
        _store_names(rows, now, db)
        result.names_fetched += len(answer.names)
        result.names_unknown += len(answer.unknown)


def enrich(
    db: Database, esi: EsiClient | None = None, *, now: dt.datetime | None = None
) -> EnrichResult:
    """Fill regions and names: from ESI first when a client is given (ESI down is
    recorded in `esi_errors`, not raised), then from the tables for every row."""
    now = now or _now()
    fetched = EnrichResult()
    if esi is not None:
        with connected(db):
            for step in (fetch_systems, fetch_names):
                try:
                    step(db, esi, fetched, now)
                except (EsiError, RequestException, KeyError, TypeError, ValueError) as exc:
                    # Down, refusing (4xx) or answering nonsense: fill from the tables now
                    # and ask again next run; never stop the statistics job over it.
                    log.warning("ESI unavailable, names/regions filled later: %s", exc)
                    fetched.esi_errors.append(str(exc))
                    break  # down is down: do not wait through the retries again
    result = fill_from_tables(db, now)
    result.systems_fetched = fetched.systems_fetched
    result.names_fetched = fetched.names_fetched
    result.names_unknown = fetched.names_unknown
    result.esi_errors = fetched.esi_errors
    return result


def cached_names(ids: Iterable[int]) -> dict[int, str]:
    """Names known for `ids`, from the names cache and the universe tables."""
    wanted = sorted({int(i) for i in ids})
    found: dict[int, str] = {}
    sources: tuple[tuple[Any, Any], ...] = (
        (UniverseSystem, UniverseSystem.system_id),
        (UniverseRegion, UniverseRegion.region_id),
        (EntityName, EntityName.entity_id),
        (UniverseType, UniverseType.type_id),
    )
    for chunk in chunked(wanted, 1000):
        for model, key in sources:
            query = model.select(key, model.name).where(key.in_(chunk), model.name.is_null(False))
            found.update((int(i), n) for i, n in cast(Iterable[tuple[int, str]], query.tuples()))
    return found


def scheduler_step(settings: Settings) -> Callable[[Database], EnrichResult]:
    """The enrichment step for the statistics job (`Scheduler(before_aggregation=[...])`):
    regions from the universe tables, and names/regions from ESI (`settings.esi`) unless
    `settings.esi_enrichment` is false."""
    client = (
        EsiClient(settings.esi, contact=settings.user_agent_contact)
        if settings.esi_enrichment
        else None
    )

    def step(db: Database) -> EnrichResult:
        return enrich(db, client)

    return step


class RowFiller:
    """Fills `region_id`, `region_name`, `solar_system_name` and `ship_type_name` of
    involvement rows in place, before they are written, from the universe tables (never
    ESI: safe on the live write path). The tables are read into memory once (about 8,500
    systems) and re-read after `refresh`; rows it cannot fill are left for `enrich`.

    The `ingest.rows.RowFill` every ingest path uses (`RowBatch(fill=RowFiller(db))`)."""

    def __init__(self, db: Database, *, refresh: dt.timedelta = dt.timedelta(hours=1)) -> None:
        self.db = db
        self.refresh = refresh
        self._loaded_at: dt.datetime | None = None
        self._systems: dict[int, tuple[str, int, str | None]] = {}
        self._types: dict[int, str] = {}

    def _load(self) -> None:
        now = _now()
        if self._loaded_at is not None and now - self._loaded_at < self.refresh:
            return
        with connected(self.db):
            rows = self.db.execute_sql(
                "SELECT s.system_id, s.name, s.region_id, r.name FROM universe_systems s "
                "LEFT JOIN universe_regions r ON r.region_id = s.region_id"
            ).fetchall()
            types = self.db.execute_sql("SELECT type_id, name FROM universe_types").fetchall()
        self._systems = {int(r[0]): (r[1], int(r[2]), r[3]) for r in rows}
        self._types = {int(t[0]): t[1] for t in types}
        self._loaded_at = now

    def __call__(self, rows: Sequence[InvolvementRow]) -> None:
        self._load()
        systems, types = self._systems, self._types
        for row in rows:
            system_id = row.solar_system_id
            system = systems.get(system_id) if system_id is not None else None
            if system is not None:
                if row.region_id is None:
                    row.region_id = system[1]
                if row.region_name is None:
                    row.region_name = system[2]
                if row.solar_system_name is None:
                    row.solar_system_name = system[0]
            if row.ship_type_name is None and row.ship_type_id is not None:
                row.ship_type_name = types.get(row.ship_type_id)
