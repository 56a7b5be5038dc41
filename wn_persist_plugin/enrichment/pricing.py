"""Values for mails zKillboard never valued, and zKillboard values arriving later.

Mails from EVE Ref archives or ESI carry no zkb block: they are stored with
`value_source = 'none'` and no `total_value`. `price_mails` estimates their value from
ESI's market prices (`GET /markets/prices/`, cached in `market_prices` and fetched at
most once a day by `refresh_prices`):

    value = average_price(hull) + sum(average_price(item) x (destroyed + dropped))

over every item of the victim, items inside containers included (`items` nest), in exact
Decimal arithmetic rounded to the cent as `ISKField` stores it. An item without a price
counts 0; a blueprint copy (`singleton` 2) counts 0 too (the market's price is the
original's; zKillboard values copies near zero as well). A mail whose hull has no price
is left unpriced. Priced mails get `value_source = 'esi_prices'` and a new
`processed_at`, so incremental aggregation counts them in their periods.

A zKillboard value always wins over an estimate: the ingest path replaces one
(`ingest.store`), and `apply_zkb_values` writes zKillboard's blocks fetched by other
means (`wn-persist verify`). Neither runs on the live writer's path; pricing runs at the
end of `wn-persist backfill` and in the statistics job (when ESI enrichment is on).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import (  # type: ignore[attr-defined]  # EXCEPTIONS: public, not in the stubs
    EXCEPTIONS,
    Database,
    ExceptionWrapper,
    chunked,
)
from requests import RequestException

from ..db.connect import connected, is_sqlite, write_transaction
from ..db.dialect import stored_instant
from ..db.fields import json_dumps, to_id, to_isk
from ..db.models import (
    ROLE_VICTIM,
    VALUE_ESI_PRICES,
    VALUE_NONE,
    VALUE_ZKB,
    MarketPrice,
)
from ..errors import EsiError
from ..killmails.parse import MAX_ISK, zkb_block
from ..redact import first_line
from ..settings import Settings
from ..sources.esi import EsiClient

log = logging.getLogger(__name__)

driver_errors = ExceptionWrapper(EXCEPTIONS)

PRICE_MAX_AGE = dt.timedelta(days=1)
"""Market prices younger than this are used as they are (ESI refreshes them about
hourly, but a day-old average is as good an estimate)."""
MAIL_BATCH = 500
"""Mails read, priced and written per transaction."""
BLUEPRINT_COPY = 2
"""`singleton` of a blueprint copy in a killmail's items."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- the price cache ---------------------------------------------------------------------


@dataclass
class PricesResult:
    """What `refresh_prices` did."""

    fetched: bool = False
    """True when ESI was asked and the cache replaced."""
    types: int = 0
    """Types in the cache afterwards."""
    fetched_at: dt.datetime | None = None
    """When the cache in use was fetched (None: no cache)."""
    error: str | None = None
    """Why a due fetch failed (the old cache, if any, stays in use)."""


def prices_fetched_at(db: Database) -> dt.datetime | None:
    """When the cached market prices were fetched; None when there are none."""
    with connected(db):
        row = (
            MarketPrice.select(MarketPrice.fetched_at)
            .order_by(MarketPrice.fetched_at.desc())
            .first()
        )
    return row.fetched_at if row is not None else None


def refresh_prices(
    db: Database,
    esi: EsiClient,
    *,
    now: dt.datetime | None = None,
    max_age: dt.timedelta = PRICE_MAX_AGE,
) -> PricesResult:
    """Fetch ESI's market prices into `market_prices` unless the cache is younger than
    `max_age`. A failed fetch leaves the old cache and is logged in one line."""
    now = now or _now()
    result = PricesResult(fetched_at=prices_fetched_at(db))
    if result.fetched_at is not None and now - result.fetched_at < max_age:
        result.types = _count(db)
        return result
    try:
        prices = esi.market_prices()
        if not prices:
            raise EsiError("ESI: GET /markets/prices/: an empty price list")
    except (EsiError, RequestException) as exc:
        result.error = first_line(exc)
        old = (
            f"using the prices of {result.fetched_at:%Y-%m-%d %H:%M} UTC"
            if result.fetched_at is not None
            else "no prices cached, mails without a value stay unpriced"
        )
        log.warning("market prices not fetched (%s); %s", result.error, old)
        result.types = _count(db)
        return result
    rows = [
        {"type_id": t, "average_price": None if p is None else float(p), "fetched_at": now}
        for t, p in prices.items()
    ]
    with connected(db), write_transaction(db):
        MarketPrice.delete().execute()
        for chunk in chunked(rows, 1000):
            MarketPrice.insert_many(chunk).on_conflict(
                conflict_target=[MarketPrice.type_id],
                preserve=[MarketPrice.average_price, MarketPrice.fetched_at],
            ).execute()
    result.fetched, result.fetched_at, result.types = True, now, len(rows)
    log.info("market prices fetched from ESI: %d types", len(rows))
    return result


def _count(db: Database) -> int:
    with connected(db):
        return int(MarketPrice.select().count())


def load_prices(db: Database) -> dict[int, Decimal]:
    """The cached average prices, type id -> exact ISK (types without one left out)."""
    with connected(db):
        rows = db.execute_sql(
            "SELECT type_id, average_price FROM market_prices WHERE average_price IS NOT NULL"
        ).fetchall()
    return {int(t): Decimal(str(p)) for t, p in rows}


# --- one mail ----------------------------------------------------------------------------


def _quantity(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a quantity: {value!r}")
    return value


def _items_value(items: Any, prices: Mapping[int, Decimal]) -> Decimal:
    total = Decimal(0)
    if not isinstance(items, list):
        return total
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"an item is {type(item).__name__}, not a mapping")
        count = _quantity(item.get("quantity_destroyed")) + _quantity(item.get("quantity_dropped"))
        type_id = item.get("item_type_id")
        price = prices.get(type_id) if isinstance(type_id, int) else None
        if count and price is not None and item.get("singleton") != BLUEPRINT_COPY:
            total += price * count
        total += _items_value(item.get("items"), prices)
    return total


def mail_value(victim: Mapping[str, Any], prices: Mapping[int, Decimal]) -> Decimal | None:
    """The victim's hull and items at `prices`, to the cent; None when the hull has no
    price. Raises ValueError for an item list that is not one."""
    hull = victim.get("ship_type_id")
    hull_price = prices.get(hull) if isinstance(hull, int) else None
    if hull_price is None:
        return None
    with decimal.localcontext() as exact:
        exact.prec = 60  # far beyond any sum of 20-digit products: no rounding before ours
        total = hull_price + _items_value(victim.get("items"), prices)
        return to_isk(total)


# --- pricing the stored mails ------------------------------------------------------------


@dataclass
class PricingSummary:
    seen: int = 0
    """Stored mails without a value."""
    priced: int = 0
    """Of those, priced from market prices now."""
    from_zkb: int = 0
    """Mails that had rows without a value beside rows with zKillboard's (filled from
    those; not counted in `seen`)."""
    prices: PricesResult | None = None

    @property
    def unpriced(self) -> int:
        """Mails still without a value: their hull has no price, or no row of theirs
        holds the victim's items (attacker rows stored before `value_source` existed)."""
        return self.seen - self.priced

    def line(self) -> str:
        return (
            f"{self.seen} mails had no value: {self.priced} priced from market prices, "
            f"{self.unpriced} still unpriced"
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _has_items(victim: Any, role: str) -> bool:
    """The stored victim entry holds the victim's items: a victim row's always does; an
    attacker row's only when kept for pricing (an `items` list)."""
    return isinstance(victim, Mapping) and (
        role == ROLE_VICTIM or isinstance(victim.get("items"), list)
    )


def _select_in(db: Database, sql: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """`sql` with `{ids}` replaced by placeholders for `ids`, run; its rows."""
    marks = ", ".join(db.param for _ in ids)
    return [tuple(r) for r in db.execute_sql(sql.format(ids=marks), list(ids)).fetchall()]


def price_mails(
    db: Database,
    prices: Mapping[int, Decimal] | None = None,
    *,
    batch: int = MAIL_BATCH,
) -> PricingSummary:
    """Price every stored mail with `value_source = 'none'` (see the module docstring) at
    `prices` (default: the cached market prices). Reads and writes `batch` mails at a
    time; each batch is one transaction, `processed_at` stamped inside it."""
    summary = PricingSummary()
    with connected(db):
        prices = load_prices(db) if prices is None else prices
        p = db.param
        after = -1
        while True:
            ids = [
                int(k)
                for (k,) in db.execute_sql(
                    # `<> 'zkb'` as the partial index killmails_without_zkb_value says it
                    "SELECT DISTINCT killmail_id FROM killmails"
                    f" WHERE value_source <> '{VALUE_ZKB}' AND value_source = '{VALUE_NONE}'"
                    f" AND killmail_id > {p}"
                    f" ORDER BY killmail_id LIMIT {int(batch)}",
                    (after,),
                ).fetchall()
            ]
            if not ids:
                break
            after = ids[-1]
            # One row's victim entry per mail (the victim's row, else the newest: an
            # attacker row kept with the items), not every row's copy of the items.
            chosen: dict[int, tuple[int, str]] = {}
            zkb_rows: dict[int, int] = {}
            for row_id, kid, role, source in _select_in(
                db,
                "SELECT id, killmail_id, character_role, value_source FROM killmails"
                " WHERE killmail_id IN ({ids}) ORDER BY killmail_id, id",
                ids,
            ):
                if source == VALUE_ZKB:
                    zkb_rows.setdefault(int(kid), int(row_id))
                elif chosen.get(int(kid), (0, ""))[1] != ROLE_VICTIM:
                    chosen[int(kid)] = (int(row_id), role)
            zkb: dict[int, Mapping[str, Any]] = {}
            if zkb_rows:
                for kid, block in _select_in(
                    db,
                    "SELECT killmail_id, zkb_data FROM killmails WHERE id IN ({ids})",
                    sorted(zkb_rows.values()),
                ):
                    if isinstance(_json(block), Mapping):
                        zkb[int(kid)] = _json(block)
            wanted = {kid: row for kid, row in chosen.items() if kid not in zkb_rows}
            summary.seen += len(wanted)
            victims = dict(
                _select_in(
                    db,
                    "SELECT id, victim_data FROM killmails WHERE id IN ({ids})",
                    sorted(row_id for row_id, _ in wanted.values()),
                )
                if wanted
                else []
            )
            values: list[tuple[int, Decimal]] = []
            for kid, (row_id, role) in wanted.items():
                victim = _json(victims.get(row_id))
                if not _has_items(victim, role):
                    continue
                try:
                    value = mail_value(victim, prices)
                except (ValueError, TypeError) as exc:
                    log.warning("killmail %d not priced: %s", kid, first_line(exc))
                    continue
                if value is not None and value <= MAX_ISK:
                    values.append((kid, value))
            with write_transaction(db):
                summary.priced += _write_estimates(db, values, _now())
            if zkb:
                summary.from_zkb += apply_zkb_values(db, zkb)
    if summary.seen or summary.from_zkb:
        log.info("pricing: %s", summary.line())
    return summary


def _time_param(db: Database, when: dt.datetime) -> Any:
    return stored_instant(when, sqlite=is_sqlite(db))


def _isk_param(db: Database, value: Decimal) -> Any:
    return format(value, "f") if is_sqlite(db) else value


def _update_from_values(
    db: Database,
    rows: Sequence[tuple[Any, ...]],
    columns: str,
    sets: str,
    where: str,
    params: Sequence[Any],
) -> int:
    """`UPDATE killmails SET sets FROM (VALUES rows) AS v WHERE ... AND where` (SQLite
    3.33+ and PostgreSQL both name the columns column1, column2, ...; column1 is the
    killmail id): `columns` is the placeholder group of one row, `params` those of
    `sets`. In the caller's transaction; returns the rows updated."""
    changed = 0
    for chunk in chunked(rows, 500):
        values = ", ".join(columns for _ in chunk)
        flat = [value for row in chunk for value in row]
        with driver_errors:
            cursor = db.cursor()
            cursor.execute(
                f"UPDATE killmails SET {sets} FROM (VALUES {values}) AS v"
                f" WHERE killmails.killmail_id = v.column1 AND {where}",
                [*params, *flat],
            )
        changed += max(cursor.rowcount, 0)
    return changed


def _write_estimates(
    db: Database, values: Sequence[tuple[int, Decimal]], stamp: dt.datetime
) -> int:
    """Set the estimates of mails still without a value; the mails changed."""
    if not values:
        return 0
    p = db.param
    rows = [(kid, _isk_param(db, value)) for kid, value in values]
    # PostgreSQL types a VALUES column from its first row: numeric for the value.
    value_mark = p if is_sqlite(db) else f"CAST({p} AS numeric)"
    _update_from_values(
        db,
        rows,
        f"({p}, {value_mark})",
        f"total_value = v.column2, value_source = '{VALUE_ESI_PRICES}', processed_at = {p}",
        f"killmails.value_source = '{VALUE_NONE}'",
        [_time_param(db, stamp)],
    )
    return len(values)


# --- zKillboard values -------------------------------------------------------------------


def apply_zkb_values(db: Database, values: Mapping[int, Mapping[str, Any]]) -> int:
    """Write zKillboard's values (`values`: killmail id -> the raw zkb block, as its
    per-character API returns it: totalValue, fittedValue, ..., hash) into the stored
    mails that have none of zKillboard's (`value_source` `none` or `esi_prices`):
    `total_value`, `zkb_data`, `solo`, `value_source = 'zkb'` and a new `processed_at`.
    Blocks without a usable `totalValue` are skipped. A few set-based statements;
    returns how many mails changed."""
    usable: dict[int, tuple[Decimal, str, bool]] = {}
    for raw_id, raw in values.items():
        try:
            killmail_id = to_id(raw_id)
            block = zkb_block(raw)
        except (TypeError, ValueError) as exc:
            log.debug("zkb value of killmail %r skipped: %s", raw_id, exc)
            continue
        if block.total_value is not None:
            usable[killmail_id] = (block.total_value, json_dumps(dict(raw)), block.solo)
    if not usable:
        return 0
    changed: set[int] = set()
    with connected(db), write_transaction(db):
        p = db.param
        stamp = _time_param(db, _now())
        for chunk in chunked(sorted(usable), 500):
            marks = ", ".join(p for _ in chunk)
            changed.update(
                int(k)
                for (k,) in db.execute_sql(
                    f"SELECT DISTINCT killmail_id FROM killmails WHERE killmail_id IN ({marks})"
                    f" AND value_source <> '{VALUE_ZKB}'",
                    chunk,
                ).fetchall()
            )
        if not changed:
            return 0
        sqlite = is_sqlite(db)
        rows = [
            (kid, _isk_param(db, usable[kid][0]), usable[kid][1], usable[kid][2])
            for kid in sorted(changed)
        ]
        columns = (
            f"({p}, {p}, json({p}), {p})"
            if sqlite
            else f"({p}, CAST({p} AS numeric), CAST({p} AS jsonb), CAST({p} AS boolean))"
        )
        _update_from_values(
            db,
            rows,
            columns,
            "total_value = v.column2, zkb_data = v.column3, solo = v.column4,"
            f" value_source = '{VALUE_ZKB}', processed_at = {p}",
            f"killmails.value_source <> '{VALUE_ZKB}'",
            [stamp],
        )
    return len(changed)


# --- where pricing runs ------------------------------------------------------------------


def run(db: Database, esi: EsiClient | None, *, now: dt.datetime | None = None) -> PricingSummary:
    """Refresh the market prices when due (only with an `esi` client), then price every
    mail without a value from the cache."""
    prices = refresh_prices(db, esi, now=now) if esi is not None else None
    summary = price_mails(db)
    summary.prices = prices
    return summary


def scheduler_step(settings: Settings) -> Callable[[Database], PricingSummary] | None:
    """The pricing step for the statistics job (before aggregation), or None when ESI
    enrichment is off (`PERSISTENCE_ESI_ENRICHMENT=false`)."""
    if not settings.esi_enrichment:
        return None
    client = EsiClient(settings.esi, contact=settings.user_agent_contact)

    def price_from_market(db: Database) -> PricingSummary:
        return run(db, client)

    return price_from_market
