"""The `wn-persist` command: a thin layer over the library functions."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from peewee import Database, InterfaceError, OperationalError

from . import __version__, migrator
from .config import ConfigError, Settings, load_settings, mask_secrets
from .database import open_database
from .status import database_status


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
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                fail(str(exc))
        return self._settings  # type: ignore[return-value]

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.settings)
        return self._db


pass_app = click.make_pass_decorator(AppContext, ensure=True)


class Main(click.Group):
    """Turns database connection failures into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError) as exc:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            where = app.settings.masked_database_url if app else "the database"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fail(f"database error ({where}): {mask_secrets(first)}", code=1)


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
    for name, value in lines:
        click.echo(f"{name + ':':<20} {value}")
    click.echo("rows:")
    for table, count in status.row_counts.items():
        click.echo(f"  {table:<22} {'(no table)' if count is None else count}")


# --- universe, enrichment and backfill commands (issue 6; enrichment helper) -------------


def _esi_client(app: AppContext) -> Any:
    from .esi import EsiClient, esi_settings

    try:
        return EsiClient(esi_settings(app.settings.extra))
    except ConfigError as exc:
        fail(str(exc))


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
    import tempfile

    from . import universe as sde

    if bool(from_dir) == download:
        fail("give either --from DIR or --download")
    with tempfile.TemporaryDirectory() as tmp:
        folder = from_dir
        try:
            if download:
                folder = to_dir or tmp
                base = sde.sde_base_url(app.settings.extra)
                click.echo(f"downloading the SDE from {base} ...")
                sde.download(folder, base)
            result = sde.import_directory(app.db, folder)  # type: ignore[arg-type]
        except ConfigError as exc:
            fail(str(exc))
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
    from .enrichment import enrich as run

    result = run(app.db, _esi_client(app) if esi else None)
    click.echo(f"regions filled:          {result.regions_filled}")
    click.echo(f"names filled:            {result.rows_changed - result.regions_filled}")
    click.echo(f"systems fetched (ESI):   {result.systems_fetched}")
    click.echo(f"names fetched (ESI):     {result.names_fetched} ({result.names_unknown} unknown)")
    for error in result.esi_errors:
        click.echo(f"ESI unavailable: {error} (filled on a later run)", err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--track", "track", type=int, multiple=True, help="Also match this character id.")
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
    zKillboard history (--zkill-history 2026-01-01..2026-01-31). Exit 1 if any was bad."""
    from . import backfill as bf
    from .esi import EsiClient, EsiSettings

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
                )
            )
        if zkill:
            start, end = bf.parse_day_range(zkill)
            base = bf.zkill_history_url(app.settings.extra)
            esi = _esi_client(app)
            history = EsiClient(EsiSettings(base_url=base, max_retries=4))
            summaries.append(
                bf.backfill_zkill_history(
                    app.db,
                    start,
                    end,
                    esi=esi,
                    history=history,
                    track=track,
                    workers=workers,
                    progress=show,
                    enrich_from_esi=use_esi,
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


if __name__ == "__main__":  # pragma: no cover
    main()
