"""`serve`, `health` and `export`: the HTTP API from the command line, and the export
without it. The web stack (extra `web`) is imported only when a command serves."""

from __future__ import annotations

import ipaddress
import signal
import sys
from collections.abc import Mapping
from typing import Any

import click
import requests

from ..api.readiness import check_readiness
from ..db.connect import open_database
from ..settings import Settings
from ..sources.http import NO_RETRIES, make_session, transport_cause
from .main import AppContext, fail, pass_app

WEB_EXTRA_HINT = "the HTTP API needs its extra: pip install 'wn-persist-plugin[web]'"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to listen beyond loopback without an API token (exit 2, one line)."""
    if not is_loopback(host) and not settings.http.api_token:
        fail(f"PERSISTENCE_API_TOKEN must be set to listen on {host} (a non-loopback address)")


def _web() -> Any:
    try:
        from ..api import app, metrics, server
    except ImportError:
        fail(WEB_EXTRA_HINT, code=1)
    return app, metrics, server


def build_server(
    settings: Settings,
    host: str,
    port: int,
    *,
    stats_provider: Any = None,
    feed_status: Any = None,
) -> Any:
    """An `ApiServer` over its own (unbound) database object and metrics registry."""
    app_module, metrics, server = _web()
    db = open_database(settings, bind=False)
    registry = metrics.make_registry(db, stats_provider=stats_provider, feed_status=feed_status)
    application = app_module.create_app(settings, db, registry, feed_status=feed_status)
    return server.ApiServer(application, host, port)


port_option = click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (PERSISTENCE_HTTP_PORT)."
)
host_option = click.option("--host", default=None, help="Address (PERSISTENCE_HTTP_HOST).")


@click.command()
@host_option
@port_option
@pass_app
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (read-only; no feed). Stops gracefully on SIGTERM / SIGINT.

    Example: PERSISTENCE_API_TOKEN=... wn-persist serve --host 0.0.0.0 --port 8080
    """
    settings = app.settings
    host = host or settings.http.host
    port = port or settings.http.serve_port
    check_bind(settings, host)
    api = build_server(settings, host, port)

    def stop(signum: int, _frame: Any) -> None:
        import threading

        threading.Thread(target=api.stop, name="wn-api-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"serving the API on http://{api.host}:{api.port}", err=True)
    api.serve()


@click.command()
@host_option
@port_option
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait.")
@pass_app
def health(app: AppContext, host: str | None, port: int | None, timeout: float) -> None:
    """Exit 0 when /readyz would answer 200, else 1 with one line.

    With an API port (PERSISTENCE_HTTP_PORT or --port) it asks that server's /readyz, so
    it also fails when the server is down; without one it runs the same checks itself
    (database reachable, schema current). Example (Dockerfile): HEALTHCHECK CMD
    wn-persist health
    """
    settings = app.settings
    port = port or settings.http.port
    if port is None:
        result = check_readiness(app.db)
        if not result.ready:
            click.echo(f"not ready{_failed(result.checks)}", err=True)
            sys.exit(1)
        schema = result.checks.get("schema", {})
        click.echo(f"ready (schema version {schema.get('version', '?')})")
        return
    host = host or settings.http.host
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/readyz"
    session = make_session(settings.user_agent_contact, timeout=timeout, retries=NO_RETRIES)
    if settings.http.api_token:
        session.headers["Authorization"] = f"Bearer {settings.http.api_token}"
    try:
        with session.get(url) as response:
            body = response.json() if response.content else {}
    except (requests.RequestException, ValueError) as exc:
        cause = transport_cause(exc) if isinstance(exc, requests.RequestException) else exc
        click.echo(f"not ready: {url} unreachable ({cause})", err=True)
        sys.exit(1)
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    if response.status_code != 200:
        click.echo(f"not ready: {url} answered {response.status_code}{_failed(checks)}", err=True)
        sys.exit(1)
    schema = checks.get("schema", {})
    click.echo(f"ready (schema version {schema.get('version', '?')})")


def _failed(checks: Mapping[str, Any]) -> str:
    failed = [
        f"{name}: {check.get('error', 'not ok')}"
        for name, check in checks.items()
        if isinstance(check, dict) and check.get("ok") is False
    ]
    return f" ({'; '.join(failed)})" if failed else ""


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json", "ndjson"]), default="ndjson",
    show_default=True,
)  # fmt: skip
@click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--character", type=click.IntRange(0), default=None, help="Only this id.")
@pass_app
def export(
    app: AppContext, fmt: str, out: str, start: Any, end: Any, character: int | None
) -> None:
    """Write one row per involvement (memory stays flat whatever the size).

    Example: wn-persist export --format csv --out history.csv --from 2026-01-01
    """
    from ..errors import InvalidParameter
    from ..statistics.export import write_export

    first = start.date() if start else None
    last = end.date() if end else None
    try:
        if out == "-":
            count = write_export(app.db, sys.stdout, fmt, first, last, character)
        else:
            with open(out, "w", encoding="utf-8", newline="") as fh:
                count = write_export(app.db, fh, fmt, first, last, character)
    except InvalidParameter as exc:
        fail(f"--{exc.parameter}: {exc.problem}")
    click.echo(f"exported {count} involvements", err=True)


def register(group: click.Group) -> None:
    for command in (serve, health, export):
        group.add_command(command)


def start_host_api(
    settings: Settings, host: Any, http_host: str | None, http_port: int | None
) -> Any:
    """Under `run`: the API in a thread when a port is set (flag or setting), with the
    feed position and the plugin's pipeline counters; None otherwise."""
    port = http_port or settings.http.port
    if port is None:
        return None
    address = http_host or settings.http.host
    check_bind(settings, address)
    def pipeline_stats() -> Any:
        found = host.plugin_stats()
        return found[0] if found else None

    api = build_server(
        settings, address, port, stats_provider=pipeline_stats, feed_status=host.feed_position
    )
    api.start_thread()
    return api
