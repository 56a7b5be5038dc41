"""The tables, as peewee models bound to `database_proxy`.

The schema itself is created by the numbered migrations in `migrations/`; these models
describe it for queries. Keep the two in step.
"""

from __future__ import annotations

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DateField,
    DoubleField,
    IntegerField,
    JSONField,
    Model,
    TextField,
)

from .connect import database_proxy
from .fields import ISKField, UTCDateTimeField, json_dumps

ROLE_ATTACKER = "attacker"
ROLE_VICTIM = "victim"
VALUE_ZKB = "zkb"
VALUE_ESI_PRICES = "esi_prices"
VALUE_NONE = "none"
VALUE_SOURCES = (VALUE_ZKB, VALUE_ESI_PRICES, VALUE_NONE)
"""`killmails.value_source`: where a mail's `total_value` came from."""


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class TrackedCharacter(BaseModel):
    character_id = BigIntegerField(unique=True)
    character_name = CharField(null=True)
    corporation_id = BigIntegerField(null=True)
    corporation_name = CharField(null=True)
    corporation_ticker = CharField(null=True)
    alliance_id = BigIntegerField(null=True)
    alliance_name = CharField(null=True)
    alliance_ticker = CharField(null=True)
    tracked = BooleanField(default=True)
    tracked_since = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "tracked_characters"


class Involvement(BaseModel):
    """One involvement: a tracked character on one killmail in one role."""

    id = BigAutoField()
    killmail_id = BigIntegerField()
    kill_time = UTCDateTimeField()
    solar_system_id = BigIntegerField(null=True)
    solar_system_name = CharField(null=True)
    region_id = BigIntegerField(null=True)
    region_name = CharField(null=True)
    total_value = ISKField(null=True)
    character_role = CharField(max_length=16)
    related_character_id = BigIntegerField()
    related_character_name = CharField(null=True)
    ship_type_id = BigIntegerField(null=True)
    ship_type_name = CharField(null=True)
    final_blow = BooleanField(default=False)
    solo = BooleanField(default=False)
    npc = BooleanField(default=False)
    attacker_count = IntegerField(default=0)
    zkb_data = JSONField(null=True, dumps=json_dumps)
    victim_data = JSONField(null=True, dumps=json_dumps)
    attacker_data = JSONField(null=True, dumps=json_dumps)
    value_source = CharField(max_length=16, default=VALUE_NONE)
    """Where `total_value` came from: `zkb` (zKillboard), `esi_prices` (estimated from
    ESI's market prices, `enrichment.pricing`) or `none` (no value yet)."""
    processed_at = UTCDateTimeField()

    class Meta:
        table_name = "killmails"
        indexes = (
            (("killmail_id", "related_character_id", "character_role"), True),
            (("related_character_id", "kill_time"), False),
            # migration 0005 names it killmails_character_page: keyset pages
            (("related_character_id", "kill_time", "killmail_id", "character_role"), False),
            (("solar_system_id", "kill_time"), False),
            (("character_role", "kill_time"), False),
            (("processed_at",), False),
            # migration 0010 adds killmails_without_zkb_value (killmail_id) WHERE
            # value_source <> 'zkb': pricing and zKillboard values find their mails by it
        )


class KillmailStatistics(BaseModel):
    id = BigAutoField()
    period_type = CharField(max_length=16)
    period_start = DateField()
    period_end = DateField()
    character_id = BigIntegerField()
    character_name = CharField(null=True)
    kills_count = IntegerField(default=0)
    deaths_count = IntegerField(default=0)
    isk_destroyed = ISKField(default=0)
    isk_lost = ISKField(default=0)
    solo_kills = IntegerField(default=0)
    final_blows = IntegerField(default=0)
    npc_deaths = IntegerField(default=0)
    region_activity = JSONField(null=True, dumps=json_dumps)
    ship_usage = JSONField(null=True, dumps=json_dumps)
    inserted_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "killmail_statistics"
        indexes = (
            (("character_id", "period_type", "period_start"), True),
            (("period_type", "period_start"), False),
        )


class StatisticsWatermark(BaseModel):
    """Per period type: the `processed_at` from which the next incremental aggregation
    looks for changes (the last run's start minus the overlap)."""

    period_type = CharField(max_length=16, primary_key=True)
    changes_since = UTCDateTimeField()
    last_run_at = UTCDateTimeField()
    last_rebuild_at = UTCDateTimeField(null=True)
    last_run_seconds = DoubleField(null=True)

    class Meta:
        table_name = "statistics_watermarks"


class StatisticsRetention(BaseModel):
    """One row: retention has deleted every involvement before `pruned_before` (a UTC day).
    Periods starting before it keep their figures."""

    id = IntegerField(primary_key=True)
    pruned_before = DateField()
    updated_at = UTCDateTimeField()
    late_dropped = BigIntegerField(default=0)
    """Involvements retention deleted that arrived after their period was frozen (a
    running total; migration 0008)."""

    class Meta:
        table_name = "statistics_retention"


class StatisticsDeletion(BaseModel):
    """A character lost involvements on a UTC day (written by a trigger on `killmails`)."""

    character_id = BigIntegerField()
    day = DateField()
    marked_at = UTCDateTimeField()

    class Meta:
        table_name = "statistics_deletions"
        indexes = ((("character_id", "day"), True), (("marked_at",), False))


class GroupDay(BaseModel):
    """The tracked group as one side on one UTC day: every stored mail counted once per
    side (kills and ISK destroyed for mails with a tracked attacker, losses and ISK lost
    for mails with a tracked victim). Written by the daily aggregation (migration 0009);
    days before the retention boundary keep their figures."""

    day = DateField(primary_key=True)
    kills = IntegerField(default=0)
    deaths = IntegerField(default=0)
    isk_destroyed_cents = BigIntegerField(default=0)
    isk_lost_cents = BigIntegerField(default=0)
    solo_kills = IntegerField(default=0)
    final_blows = IntegerField(default=0)
    npc_deaths = IntegerField(default=0)
    attackers_on_kills = BigIntegerField(default=0)
    """Sum of `attacker_count` over the kills (for the average fleet size)."""
    split_mails = IntegerField(default=0)
    """(mail, role) pairs of the day that also have involvements on another day (a mail
    stored with different kill times): summing days would count them twice, so ranges
    holding such days are computed live."""
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "group_days"


# --- universe, names and backfill state (migration 0004) ------------------------------------


class UniverseRegion(BaseModel):
    region_id = BigIntegerField(primary_key=True)
    name = CharField()

    class Meta:
        table_name = "universe_regions"


class UniverseConstellation(BaseModel):
    constellation_id = BigIntegerField(primary_key=True)
    region_id = BigIntegerField(index=True)
    name = CharField()

    class Meta:
        table_name = "universe_constellations"


class UniverseSystem(BaseModel):
    system_id = BigIntegerField(primary_key=True)
    constellation_id = BigIntegerField()
    region_id = BigIntegerField(index=True)
    name = CharField()
    security = DoubleField(null=True)

    class Meta:
        table_name = "universe_systems"


class UniverseType(BaseModel):
    type_id = BigIntegerField(primary_key=True)
    group_id = BigIntegerField(null=True)
    group_name = CharField(null=True)
    category_id = BigIntegerField(null=True)
    name = CharField()

    class Meta:
        table_name = "universe_types"


class EntityName(BaseModel):
    """Names cache: one row per id ESI was asked about. `name` is None for an id ESI does
    not know (so it is not asked again)."""

    entity_id = BigIntegerField(primary_key=True)
    name = CharField(null=True)
    category = CharField(max_length=32, null=True)
    fetched_at = UTCDateTimeField()

    class Meta:
        table_name = "entity_names"


class BackfillCursor(BaseModel):
    """Where a resumable backfill source (e.g. one zKillboard history day) got to."""

    source = CharField(max_length=200, primary_key=True)
    position = TextField(null=True)
    done = BooleanField(default=False)
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "backfill_cursors"


class MarketPrice(BaseModel):
    """ESI's market prices (`GET /markets/prices/`), the whole list as last fetched:
    `average_price` is None for a type ESI lists without one."""

    type_id = BigIntegerField(primary_key=True)
    average_price = DoubleField(null=True)
    """As ESI sent it (a JSON number); `Decimal(str(value))` is the exact amount."""
    fetched_at = UTCDateTimeField()

    class Meta:
        table_name = "market_prices"


UNIVERSE_MODELS: tuple[type[BaseModel], ...] = (
    UniverseRegion,
    UniverseConstellation,
    UniverseSystem,
    UniverseType,
    EntityName,
    BackfillCursor,
)

# --- end of universe block -----------------------------------------------------------------


class FeedState(BaseModel):
    """The standalone host's own state, key -> value (e.g. `r2z2.last_sequence`)."""

    key = CharField(max_length=64, primary_key=True)
    value = TextField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "feed_state"


class SkippedSequence(BaseModel):
    """An R2Z2 sequence the host skipped: the feed kept answering it with a mail that
    cannot be parsed. `killmail_id` when the answer named one, to fetch it later."""

    sequence = BigIntegerField(primary_key=True)
    killmail_id = BigIntegerField(null=True)
    reason = TextField()
    skipped_at = UTCDateTimeField(index=True)

    class Meta:
        table_name = "skipped_sequences"


class ReportSent(BaseModel):
    """A report posted for one period (`period_type`, `period_start`): each once."""

    period_type = CharField(max_length=16)
    period_start = DateField()
    sent_at = UTCDateTimeField()

    class Meta:
        table_name = "reports_sent"
        primary_key = CompositeKey("period_type", "period_start")


class VerifyRun(BaseModel):
    """One verification against zKillboard (`ingest.verify`): its range and counts.
    `missing` counts what was still missing when the run ended (after its repair);
    `finished_at` is None while it runs (or when it died)."""

    id = BigAutoField()
    started_at = UTCDateTimeField(index=True)
    finished_at = UTCDateTimeField(null=True)
    scheduled = BooleanField(default=False)
    from_day = DateField()
    to_day = DateField()
    characters = IntegerField(default=0)
    on_zkillboard = IntegerField(default=0)
    stored = IntegerField(default=0)
    missing = IntegerField(default=0)
    extra = IntegerField(default=0)
    unpriced = IntegerField(default=0)
    repaired = IntegerField(default=0)
    error = TextField(null=True)

    class Meta:
        table_name = "verify_runs"


ALL_MODELS: tuple[type[BaseModel], ...] = (
    TrackedCharacter,
    Involvement,
    KillmailStatistics,
    StatisticsWatermark,
    StatisticsRetention,
    StatisticsDeletion,
    GroupDay,
    *UNIVERSE_MODELS,
    FeedState,
    SkippedSequence,
    ReportSent,
    MarketPrice,
    VerifyRun,
)
