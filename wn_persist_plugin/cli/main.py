"""The `wn-persist` command: a thin layer over the library functions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import tempfile
from typing import Any

import click
from peewee import Database, InterfaceError, OperationalError, ProgrammingError

from .. import __version__
from ..db import migrator
from ..db.connect import open_database
from ..db.status import database_status
from ..doctor import Check, run_checks, settings_lines
from ..enrichment import static_data as sde
from ..enrichment.fill import enrich as enrich_stored
from ..errors import ConfigError, JobBusy
from ..host.runner import Host
from ..ingest import backfill as bf
from ..ingest import verify as vf
from ..ingest.tracked import load_tracked
from ..redact import first_line
from ..settings import Settings, load_settings, parse_eve_id
from ..sources.esi import EsiClient
from ..sources.everef import EveRefClient
from ..sources.zkill_api import FIRST_YEAR, ZkillApiClient
from ..sources.zkill_history import ZkillHistoryClient
from ..statistics import queries as sq
from ..statistics.aggregation import aggregate as run_aggregate
from ..statistics.retention import prune as run_prune


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit (status 2: bad input or configuration)."""
    click.echo(f"wn-persist: error: {message}", err=True)
    sys.exit(code)


class AppContext:
    """Settings and database, loaded on first use so `--help` needs no configuration."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        """Every setting, validated on first use (a bad one raises `ConfigError`)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.settings)
        return self._db


pass_app = click.make_pass_decorator(AppContext, ensure=True)


_NUMBER = re.compile(r"\s*[+-]?\d+\s*")


class EveId(click.ParamType):
    """An EVE id: digits only, 1..2**63-1 (the rule of `settings.parse_eve_id`).

    With `names=True` text that is not a number passes through unchanged, as a name."""

    name = "id"

    def __init__(self, what: str = "character id", *, names: bool = False) -> None:
        self.what = what
        self.names = names

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if self.names and not _NUMBER.fullmatch(value):
            return value
        try:
            return parse_eve_id(value, self.what)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


CHARACTER_ID = EveId()
CHARACTER_ID_OR_NAME = EveId(names=True)


def _usage_line(exc: click.UsageError) -> str:
    """A click usage error as one line: `--option: problem` for a bad value."""
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
        param = exc.param
        if param is not None:
            hint = (
                " / ".join(param.opts)
                if isinstance(param, click.Option)
                else param.human_readable_name
            )
            return f"{exc.param_hint or hint}: {exc.message}"
    return exc.format_message()


_MISSING_SCHEMA = ("no such table", "no such column", "does not exist")
"""How SQLite (OperationalError) and PostgreSQL (ProgrammingError) report missing tables
or columns: an unmigrated (or not fully migrated) database."""


class Main(click.Group):
    """Turns errors into one line: bad arguments and bad settings (`ConfigError`) exit
    with status 2, database failures (connection lost, schema missing) with status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            fail(_usage_line(exc))
        except ConfigError as exc:
            fail(str(exc))
        except (OperationalError, InterfaceError, ProgrammingError) as exc:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            where = app.settings.masked_database_url if app else "the database"
            first = first_line(exc)
            hint = ""
            if isinstance(exc, ProgrammingError) or any(m in first for m in _MISSING_SCHEMA):
                hint = "; the schema is missing or old: run `wn-persist migrate`"
            fail(f"database error ({where}): {first}{hint}", code=1)


@click.group(cls=Main)
@click.version_option(__version__, prog_name="wn-persist")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Killmail history and statistics for WandererNotifier."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = AppContext()


@main.command()
@click.option("--to", "to", type=int, default=None, help="Move up or down to version N.")
@pass_app
def migrate(app: AppContext, to: int | None) -> None:
    """Bring the database schema to the latest (or the given) version."""
    try:
        ran = migrator.migrate(app.db, to=to)
    except migrator.MigrationTargetError as exc:
        fail(str(exc))
    state = migrator.state(app.db)
    if ran:
        click.echo(f"ran {', '.join(ran)}")
    click.echo(
        f"schema version {state.version} of {state.latest} ({app.settings.masked_database_url})"
    )


@main.group()
def db() -> None:
    """Inspect the database."""


def _human_bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    value: float = size
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{size} B"


@db.command("status")
@pass_app
def db_status(app: AppContext) -> None:
    """Database, schema version, pending migrations, rows per table, size."""
    status = database_status(app.db, app.settings.database_url)
    lines: list[tuple[str, Any]] = [
        ("database", status.url),
        ("schema version", f"{status.version} of {status.latest}"),
        ("pending migrations", ", ".join(status.pending) or "none"),
        ("size", _human_bytes(status.size_bytes)),
    ]
    if status.skipped_sequences is not None:
        newest = f" (newest: {status.newest_skipped})" if status.newest_skipped else ""
        lines.append(("skipped sequences", f"{status.skipped_sequences}{newest}"))
    if status.late_dropped is not None:
        lines.append(
            ("dropped late", f"{status.late_dropped} involvements (arrived for a frozen period)")
        )
    for name, value in lines:
        click.echo(f"{name + ':':<20} {value}")
    click.echo("rows:")
    width = max(map(len, status.row_counts), default=0) + 1
    for table, count in status.row_counts.items():
        click.echo(f"  {table:<{width}} {'(no table)' if count is None else count}")


# --- statistics: aggregate, prune, stats ---------------------------------------------------
# Thin commands over aggregation.aggregate, retention.prune and stats_query.

_PERIOD_CHOICES = ("daily", "weekly", "monthly")
_LOCK_WAIT = 60.0
"""Seconds a command waits for another process's statistics job to finish."""


@main.command()
@click.option("--period", type=click.Choice(_PERIOD_CHOICES), help="Only this period.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Also recompute periods from this day.",
)
@click.option("--rebuild", is_flag=True, help="Recompute every period from the involvements.")
@pass_app
def aggregate(
    app: AppContext, period: str | None, since: dt.datetime | None, rebuild: bool
) -> None:
    """Update daily, weekly and monthly statistics (incremental unless --rebuild)."""
    try:
        result = run_aggregate(
            app.db,
            periods=(period,) if period else _PERIOD_CHOICES,
            since=since.date() if since else None,
            rebuild=rebuild,
            wait=_LOCK_WAIT,
        )
    except JobBusy as exc:
        fail(str(exc), code=1)
    for part in result.periods:
        examined = "all" if part.periods_examined is None else part.periods_examined
        click.echo(
            f"{part.period_type:<8} {part.mode:<11} periods examined: {examined}, "
            f"rows written: {part.rows_written}, rows removed: {part.rows_deleted} "
            f"({part.seconds:.2f}s)"
        )
        if part.period_type == "daily":
            click.echo(
                f"{'group':<8} {'days':<11} rows written: {part.group_days_written}, "
                f"rows removed: {part.group_days_deleted}"
            )
    if result.frozen_before:
        click.echo(f"periods before {result.frozen_before} are kept as pruned by retention")


@main.command()
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; change nothing.")
@pass_app
def prune(app: AppContext, dry_run: bool) -> None:
    """Delete involvements older than PERSISTENCE_RETENTION_DAYS (once aggregated)."""
    days = app.settings.retention_days
    try:
        result = run_prune(app.db, days, dry_run=dry_run, wait=_LOCK_WAIT)
    except JobBusy as exc:
        fail(str(exc), code=1)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"retention {days} days: involvements before {result.cutoff}")
    if result.blocked:
        click.echo(
            f"waiting: {result.blocked} involvements are not aggregated yet; "
            "run `wn-persist aggregate` first (nothing deleted)"
        )
    else:
        click.echo(f"{verb} {result.deleted} involvements ({result.batches} batches)")
    if result.late_dropped:
        click.echo(f"of which {result.late_dropped} arrived after their period was frozen")


@main.command()
@click.argument("character", required=False, type=CHARACTER_ID_OR_NAME)
@click.option("--period", default="weekly", show_default=True, type=click.Choice(_PERIOD_CHOICES))
@click.option("--last", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option("--top", default=None, type=click.IntRange(1, 1000), help="Leaderboard size.")
@click.option("--by", default="isk", show_default=True, type=click.Choice(("isk", "kills")))
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON.")
@pass_app
def stats(
    app: AppContext,
    character: int | str | None,
    period: str,
    last: int,
    top: int | None,
    by: str,
    as_json: bool,
) -> None:
    """A character's statistics per period (and how many of its mails have a value from
    zKillboard, from market prices, or none), or (--top N) the latest period's leaderboard."""
    if (character is None) == (top is None):
        fail("give a CHARACTER_ID_OR_NAME or --top N (not both)")
    if top is not None:
        rows = sq.leaderboard(app.db, period, by, top)
    else:
        try:
            who = sq.resolve_character(app.db, str(character))
        except sq.UnknownCharacter as exc:
            fail(str(exc))
        rows = sq.character_periods(app.db, who.character_id, period, last)
    sources = [
        sq.value_sources(app.db, who.character_id, r["period_start"], r["period_end"])
        for r in (rows if top is None else ())
    ]
    if as_json:
        out = [sq.json_ready(r) for r in rows]
        for shown, counts in zip(out, sources, strict=False):
            shown["value_sources"] = counts
        click.echo(json.dumps(out, indent=2))
        return
    if not rows:
        click.echo(f"no {period} statistics yet")
        return
    names = sq.ship_names(app.db, {tid for r in rows for tid, _ in sq.top_ships(r["ship_usage"])})
    if top is not None:
        click.echo(
            f"{period} leaderboard by {by}, {rows[0]['period_start']}..{rows[0]['period_end']}"
        )
        header = ["#", "character", "kills", "deaths", "destroyed", "lost", "eff", "solo", "fb"]
    else:
        label = who.name or str(who.character_id)
        click.echo(f"{label} ({who.character_id}): last {len(rows)} {period} periods")
        header = [
            "period",
            "kills",
            "deaths",
            "destroyed",
            "lost",
            "eff",
            "solo",
            "fb",
            "top ships",
        ]
    table = [header]
    for rank, r in enumerate(rows, 1):
        eff = sq.efficiency(r["isk_destroyed"], r["isk_lost"])
        figures = [
            str(r["kills_count"]),
            str(r["deaths_count"]),
            sq.human_isk(r["isk_destroyed"]),
            sq.human_isk(r["isk_lost"]),
            "-" if eff is None else f"{eff:.1f}%",
            str(r["solo_kills"]),
            str(r["final_blows"]),
        ]
        if top is not None:
            table.append([str(rank), r["character_name"] or str(r["character_id"]), *figures])
        else:
            ships = ", ".join(
                f"{names.get(tid, tid)} x{n}" for tid, n in sq.top_ships(r["ship_usage"])
            )
            table.append([str(r["period_start"]), *figures, ships or "-"])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if sources:
        totals = {key: sum(c[key] for c in sources) for key in sources[0]}
        click.echo(sq.value_sources_line(totals))


# === end of statistics commands ============================================================


# --- universe, enrichment and backfill ------------------------------------------------------


def _esi_client(app: AppContext) -> Any:
    return EsiClient(app.settings.esi, contact=app.settings.user_agent_contact)


@main.group()
def universe() -> None:
    """EVE static data: systems, constellations, regions, types."""


@universe.command("import")
@click.option("--from", "from_dir", type=click.Path(file_okay=False), help="Fuzzwork CSV folder.")
@click.option("--download", is_flag=True, help="Fetch the CSV files from SDE_BASE_URL first.")
@click.option("--to", "to_dir", type=click.Path(file_okay=False), help="Where --download saves.")
@pass_app
def universe_import(
    app: AppContext, from_dir: str | None, download: bool, to_dir: str | None
) -> None:
    """Load the SDE (Fuzzwork CSV) into the universe tables."""
    if bool(from_dir) == download:
        fail("give either --from DIR or --download")
    with tempfile.TemporaryDirectory() as tmp:
        folder = from_dir
        try:
            if download:
                folder = to_dir or tmp
                base = app.settings.sde_base_url
                click.echo(f"downloading the SDE from {base} ...")
                sde.download(folder, base, contact=app.settings.user_agent_contact)
            result = sde.import_directory(app.db, folder)  # type: ignore[arg-type]
        except sde.UniverseImportError as exc:
            fail(str(exc), code=1)
    for table, count in result.counts.items():
        click.echo(f"{table + ':':<26} {count}")
    for name in result.skipped:
        click.echo(f"skipped: {name}")


@main.command()
@click.option("--esi/--no-esi", default=True, help="Ask ESI for unknown ids (default: yes).")
@pass_app
def enrich(app: AppContext, esi: bool) -> None:
    """Fill regions and names of stored killmails (universe tables, names cache, ESI)."""
    result = enrich_stored(app.db, _esi_client(app) if esi else None)
    click.echo(f"regions filled:          {result.regions_filled}")
    click.echo(f"names filled:            {result.rows_changed - result.regions_filled}")
    click.echo(f"systems fetched (ESI):   {result.systems_fetched}")
    click.echo(f"names fetched (ESI):     {result.names_fetched} ({result.names_unknown} unknown)")
    for error in result.esi_errors:
        click.echo(f"ESI unavailable: {error} (filled on a later run)", err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--track", "track", type=CHARACTER_ID, multiple=True, help="Also match this character id."
)
@click.option("--zkill-history", "zkill", metavar="FROM..TO", help="Days from zKillboard.")
@click.option("--workers", type=click.IntRange(1, 32), default=4, help="ESI fetches at once.")
@click.option("--esi/--no-esi", "use_esi", default=False, help="Fill names from ESI after.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@pass_app
def backfill(
    app: AppContext,
    paths: tuple[str, ...],
    track: tuple[int, ...],
    zkill: str | None,
    workers: int,
    use_esi: bool,
    progress: bool | None,
) -> None:
    """Import past killmails: JSON/JSONL files, folders, EVE Ref .tar.bz2 archives, or
    zKillboard history (--zkill-history 2026-01-01..2026-01-31: bodies from EVE Ref's
    daily archive, the rest from ESI paced by its rate limit; Ctrl-C stops, run again to
    resume). At the end, mails without a value are priced from ESI's market prices (unless
    PERSISTENCE_ESI_ENRICHMENT is false: then from the cached prices only). Exit 1 if any
    was bad."""
    if not paths and not zkill:
        fail("give PATH... or --zkill-history FROM..TO")
    show = sys.stderr.isatty() if progress is None else progress
    summaries = []
    try:
        if paths:
            summaries.append(
                bf.backfill_paths(
                    app.db,
                    paths,
                    track=track,
                    progress=show,
                    esi=_esi_client(app) if use_esi else None,
                    market=_esi_client(app) if app.settings.esi_enrichment else None,
                )
            )
        if zkill:
            start, end = bf.parse_day_range(zkill)
            esi = _esi_client(app)
            history = ZkillHistoryClient(
                app.settings.zkill_history_url, contact=app.settings.user_agent_contact
            )
            summaries.append(
                bf.backfill_zkill_history(
                    app.db,
                    start,
                    end,
                    esi=esi,
                    history=history,
                    everef=EveRefClient(
                        app.settings.everef_base_url, contact=app.settings.user_agent_contact
                    ),
                    track=track,
                    workers=workers,
                    progress=show,
                    enrich_from_esi=use_esi,
                    market=esi if app.settings.esi_enrichment else None,
                )
            )
    except ConfigError as exc:
        fail(str(exc))
    ok = True
    for summary in summaries:
        for line in summary.lines():
            click.echo(line)
        for problem in summary.problems[:100]:
            click.echo(f"bad: {problem}", err=True)
        more = max(0, len(summary.problems) - 100) + summary.problems_dropped
        if more:
            click.echo(f"... and {more} more", err=True)
        ok = ok and summary.ok
    if not ok:
        sys.exit(1)


# --- end of universe, enrichment and backfill commands -----------------------------------


# --- `wn-persist verify`: the store against zKillboard ---------------------------------------

DAY = click.DateTime(formats=["%Y-%m-%d"])


def _check_line(name: str, check: vf.CharacterCheck, repair: bool) -> str:
    line = (
        f"{name:<12}  on zKillboard {check.on_zkillboard:>6}  stored {check.stored:>6}  "
        f"missing {check.missing:>5}  extra {check.extra:>5}  unpriced {check.unpriced:>5}"
    )
    if repair:
        line += f"  repaired {check.repaired:>5}"
    if check.whole_months:
        line += "  (whole months: no kill times)"
    return line


@main.command()
@click.option(
    "--character", "characters", type=CHARACTER_ID, multiple=True, metavar="ID",
    help="Check this character (repeatable; default: every tracked character).",
)  # fmt: skip
@click.option(
    "--from", "start", type=DAY, required=True, metavar="DAY", help="First day (YYYY-MM-DD, UTC)."
)
@click.option(
    "--to", "end", type=DAY, required=True, metavar="DAY", help="Last day (YYYY-MM-DD, UTC)."
)
@click.option("--repair", is_flag=True, help="Store the missing mails and re-aggregate.")
@pass_app
def verify(
    app: AppContext,
    characters: tuple[int, ...],
    start: dt.datetime,
    end: dt.datetime,
    repair: bool,
) -> None:
    """Compare the stored killmails of FROM..TO with zKillboard's, character by
    character (zKillboard's API, one request a second). Prints what zKillboard lists, what
    is stored, missing, extra and without a value; --repair stores the missing ones through
    the ingest path (bodies from zKillboard, else ESI) and re-aggregates their periods.
    Exit 1 when mails are (still) missing."""
    first, last = start.date(), end.date()
    if last < first:
        raise click.BadParameter(f"{last} is before --from {first}", param_hint="--to")
    if first.year < FIRST_YEAR:
        raise click.BadParameter(f"zKillboard starts in {FIRST_YEAR}", param_hint="--from")
    if last > dt.datetime.now(dt.UTC).date():
        raise click.BadParameter(f"{last} is in the future", param_hint="--to")
    settings = app.settings
    db = app.db
    ids = list(dict.fromkeys(characters))
    if not ids:
        with db.connection_context():
            ids = sorted(load_tracked(db).ids)
        if not ids:
            fail("no tracked characters in the database; pass --character ID")
    client = ZkillApiClient(settings.verify.api_url, contact=settings.user_agent_contact)
    report = vf.verify(
        db,
        ids,
        first,
        last,
        client,
        repair=repair,
        esi=_esi_client(app) if repair else None,
        on_character=lambda check: click.echo(_check_line(str(check.character_id), check, repair)),
    )
    vf.record(db, report)
    if report.start != first:
        click.echo(f"from {report.start}: older mails were removed by retention")
    if report.characters and report.stopped is None:
        click.echo(_check_line("total", report.total, repair))
    if report.zkb_values:
        click.echo(f"values: {report.zkb_values} stored mails took zKillboard's value")
    for problem in report.problems[:100]:
        click.echo(f"not stored: {problem}", err=True)
    if report.statistics:
        click.echo(f"statistics: {report.statistics}")
    if report.stopped is not None:
        fail(report.stopped, code=1)
    if not report.ok:
        sys.exit(1)


# --- end of `wn-persist verify` ---------------------------------------------------------------


# --- `wn-persist run`: the standalone host (host.py) --------------------------------------


@main.command()
@click.option(
    "--track",
    "track",
    type=CHARACTER_ID,
    multiple=True,
    metavar="ID",
    help="Track this EVE character id (repeatable; added to TRACKED_CHARACTER_IDS).",
)
@click.option("--host", "http_host", default=None, help="API address (PERSISTENCE_HTTP_HOST).")
@click.option(
    "--port", "http_port", type=click.IntRange(1, 65535), default=None,
    help="Serve the API on this port too (PERSISTENCE_HTTP_PORT).",
)  # fmt: skip
@pass_app
def run(
    app: AppContext, track: tuple[int, ...], http_host: str | None, http_port: int | None
) -> None:
    """Follow zKillboard's R2Z2 feed and keep the killmails of tracked characters.

    Tracked characters come from the Wanderer map API (MAP_URL, MAP_NAME, MAP_API_KEY)
    and/or TRACKED_CHARACTER_IDS / --track. Stops cleanly on SIGINT / SIGTERM.
    """
    settings = app.settings
    try:
        host = Host(settings, track=track)
    except ConfigError as exc:
        if exc.variable != "TRACKED_CHARACTER_IDS":
            raise
        fail(f"{exc}, or pass --track ID")
    api = web.start_host_api(settings, host, http_host, http_port)
    host.install_signal_handlers()
    try:
        result = host.run()
    finally:
        if api is not None:
            api.stop()
    sys.exit(result.exit_code)


# --- end of `wn-persist run` ---------------------------------------------------------------


@main.command()
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 120),
    default=5.0,
    show_default=True,
    help="Seconds each outside service gets to answer.",
)
@pass_app
def doctor(app: AppContext, timeout: float) -> None:
    """Check the database, the map API, R2Z2, ESI, the static data and the settings;
    print a table with one line of advice per failed check. Exit 1 if any failed."""
    settings: Settings | None = None
    try:
        settings = app.settings
    except ConfigError as exc:
        checks = [Check("settings", False, str(exc), "fix that variable (see docs/settings.md)")]
    else:
        checks = run_checks(settings, timeout=timeout)
    width = max(len(c.name) for c in checks)
    for check in checks:
        click.echo(f"{'✔' if check.ok else '✘'} {check.name:<{width}}  {check.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        click.echo("")
    for check in failed:
        click.echo(f"✘ {check.name}: {check.advice}")
    if settings is not None:
        click.echo("\nsettings:")
        for name, value in settings_lines(settings):
            click.echo(f"  {name} = {value}")
    if failed:
        sys.exit(1)


from . import (  # noqa: E402 - likewise
    charts,
    reports,
    web,  # noqa: E402 - its commands use the group and helpers above
)

web.register(main)
charts.register(main)
reports.register(main)


if __name__ == "__main__":  # pragma: no cover
    main()
