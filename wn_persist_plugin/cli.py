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


if __name__ == "__main__":  # pragma: no cover
    main()


# --- `wn-persist run`: the standalone host (host.py) --------------------------------------


@main.command()
@click.option(
    "--track",
    "track",
    multiple=True,
    metavar="ID",
    help="Track this EVE character id (repeatable; added to TRACKED_CHARACTER_IDS).",
)
@pass_app
def run(app: AppContext, track: tuple[str, ...]) -> None:
    """Follow zKillboard's R2Z2 feed and keep the killmails of tracked characters.

    Tracked characters come from the Wanderer map API (MAP_URL, MAP_NAME, MAP_API_KEY)
    and/or TRACKED_CHARACTER_IDS / --track. Stops cleanly on SIGINT / SIGTERM.
    """
    from .host import Host, host_settings

    try:
        options = host_settings(app.settings, track)
    except ConfigError as exc:
        fail(str(exc))
    host = Host(app.settings, options)
    host.install_signal_handlers()
    result = host.run()
    sys.exit(result.exit_code)


# --- end of `wn-persist run` ---------------------------------------------------------------
