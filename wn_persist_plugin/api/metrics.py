"""Prometheus metrics, all named `wn_persist_*`, in a registry the caller owns.

- Pipeline counters (killmails seen, matched, ignored, malformed, dropped, written; rows
  written; the writer queue depth) come from a `PipelineStats` provider at scrape time:
  `register_pipeline_metrics(registry, provider)`. A foreign host that runs the plugin
  calls the same function with its own registry.
- Database figures (rows per table, size, last aggregation per period type, the last
  verification against zKillboard) are read at scrape time by `DatabaseCollector`.
- `HttpMetrics` times requests by route template, method and status.
No metric has a per-character label.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from peewee import Database
from prometheus_client import CollectorRegistry, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..db.connect import connected, database_size
from ..db.models import ALL_MODELS, VerifyRun
from ..db.status import late_dropped_total
from ..ingest.verify import last_verify_run
from ..redact import first_line
from .readiness import last_aggregations

log = logging.getLogger(__name__)
PREFIX = "wn_persist"

StatsProvider = Callable[[], Any]
"""Returns a `PipelineStats` (or a mapping with its field names), or None when the
plugin is not running."""

PIPELINE_COUNTERS = {
    "seen": ("killmails_seen", "Killmails handed to the plugin."),
    "matched": ("killmails_matched", "Killmails with a tracked character."),
    "ignored": ("killmails_ignored", "Killmails without a tracked character."),
    "malformed": ("killmails_malformed", "Malformed killmails skipped."),
    "dropped": ("killmails_dropped", "Matched killmails refused (queue full or shutdown)."),
    "mails_written": ("killmails_written", "Matched killmails whose rows were written."),
    "rows_written": ("involvement_rows_written", "Involvement rows written."),
    "write_errors": ("write_errors", "Rows the database refused."),
    "retries": ("write_retries", "Write attempts that failed on an unreachable database."),
    "lost": ("killmails_lost", "Queued killmails given up at shutdown."),
}
PIPELINE_GAUGES = {
    "queued": ("writer_queue_depth", "Matched killmails waiting to be written."),
    "queued_bytes": (
        "writer_queue_bytes",
        "Estimated memory of the killmails waiting to be written, in bytes.",
    ),
    "tracked": ("tracked_characters", "Characters currently tracked."),
}


def _as_mapping(stats: Any) -> Mapping[str, Any]:
    if stats is None:
        return {}
    if is_dataclass(stats) and not isinstance(stats, type):
        return asdict(stats)
    if isinstance(stats, Mapping):
        return stats
    return {}


class PipelineCollector(Collector):
    """The plugin's `PipelineStats`, read from the provider at each scrape."""

    def __init__(self, provider: StatsProvider) -> None:
        self.provider = provider

    def collect(self) -> Iterator[Metric]:
        try:
            stats = _as_mapping(self.provider())
        except Exception as exc:  # noqa: BLE001 - a scrape never fails on this
            log.debug("pipeline stats unavailable: %s", first_line(exc))
            stats = {}
        for key, (name, doc) in PIPELINE_COUNTERS.items():
            if isinstance(stats.get(key), int):
                yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=stats[key])
        for key, (name, doc) in PIPELINE_GAUGES.items():
            if isinstance(stats.get(key), int):
                yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=stats[key])


def register_pipeline_metrics(registry: CollectorRegistry, stats_provider: StatsProvider) -> None:
    """Publish the plugin's pipeline counters in `registry` (for this API and for any
    host that embeds the plugin: pass `plugin.stats` or the `pipeline_stats` hook)."""
    registry.register(PipelineCollector(stats_provider))


def rows_of(db: Database, table: str) -> int:
    return int(db.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


class DatabaseCollector(Collector):
    """Rows per table, database size and last aggregation, read at scrape time; feed
    position under `run`."""

    def __init__(
        self, db: Database, feed_status: Callable[[], Mapping[str, Any] | None] | None = None
    ) -> None:
        self.db = db
        self.feed_status = feed_status

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 when the database answered.")
        try:
            yield from self._database()
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - report as down, never fail the scrape
            log.warning("metrics: database unavailable: %s", first_line(exc))
            try:
                self.db.close()
            except Exception:  # noqa: BLE001
                pass
            up.add_metric([], 0)
        yield up
        if self.feed_status is not None:
            feed = self.feed_status() or {}
            for key, name, doc in (
                ("last_sequence", "feed_last_sequence", "Last R2Z2 sequence handed over."),
                ("lag", "feed_lag", "Sequences between the feed's latest and the last handled."),
            ):
                if isinstance(feed.get(key), int):
                    yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=feed[key])

    def _database(self) -> Iterator[Metric]:
        db = self.db
        with connected(db):
            tables = set(db.get_tables())
            rows = GaugeMetricFamily(f"{PREFIX}_table_rows", "Rows per table.", labels=["table"])
            for model in ALL_MODELS:
                name = model._meta.table_name
                if name in tables:
                    rows.add_metric([name], rows_of(db, name))
            size = database_size(db)
            marks = last_aggregations(db) if "statistics_watermarks" in tables else {}
            skipped = rows_of(db, "skipped_sequences") if "skipped_sequences" in tables else None
            late = late_dropped_total(db)
            verified = last_verify_run(db) if "verify_runs" in tables else None
        yield rows
        if skipped is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_feed_skipped_sequences",
                "R2Z2 sequences `run` skipped for an unusable mail (recorded to fetch later).",
                value=skipped,
            )
        if late is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_retention_late_dropped",
                "Involvements retention deleted that arrived after their period was frozen.",
                value=late,
            )
        if size is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_database_size_bytes", "Size of the database.", value=size
            )
        when = GaugeMetricFamily(
            f"{PREFIX}_aggregation_last_run_timestamp_seconds",
            "Start of the last aggregation run (Unix time).",
            labels=["period_type"],
        )
        took = GaugeMetricFamily(
            f"{PREFIX}_aggregation_last_duration_seconds",
            "Duration of the last aggregation run.",
            labels=["period_type"],
        )
        for period, mark in marks.items():
            if mark["last_run_at"] is not None:
                when.add_metric([period], mark["last_run_at"].timestamp())
            if mark["seconds"] is not None:
                took.add_metric([period], float(mark["seconds"]))
        yield when
        yield took
        if verified is not None:
            yield from _verify_metrics(verified)


VERIFY_GAUGES = {
    "missing": "Mails zKillboard lists that were still not stored after the last verification.",
    "extra": "Stored mails zKillboard did not list in the last verification.",
    "unpriced": "Stored mails without a value in the last verification's range.",
    "repaired": "Missing mails the last verification stored.",
}


def _verify_metrics(run: VerifyRun) -> Iterator[Metric]:
    """The last verification against zKillboard that went through (`verify_runs`)."""
    for field, doc in VERIFY_GAUGES.items():
        yield GaugeMetricFamily(f"{PREFIX}_verify_{field}", doc, value=getattr(run, field))
    if run.finished_at is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_verify_last_run_timestamp_seconds",
            "End of the last verification against zKillboard (Unix time).",
            value=run.finished_at.timestamp(),
        )


class HttpMetrics:
    """Falcon middleware: request duration by route template, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request duration.",
            ["route", "method", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def process_request(self, req: Any, resp: Any) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or "unmatched"
        status = str(resp.status_code if hasattr(resp, "status_code") else resp.status)[:3]
        self.duration.labels(route, req.method, status).observe(time.perf_counter() - started)


def register_build_info(registry: CollectorRegistry) -> None:
    Info(f"{PREFIX}_build", "Version of wn-persist.", registry=registry).info(
        {"version": __version__, "python": platform.python_version()}
    )


def make_registry(
    db: Database,
    *,
    stats_provider: StatsProvider | None = None,
    feed_status: Callable[[], Mapping[str, Any] | None] | None = None,
) -> CollectorRegistry:
    """A fresh registry with the build info, the database collector and (when given)
    the pipeline counters."""
    registry = CollectorRegistry()
    register_build_info(registry)
    registry.register(DatabaseCollector(db, feed_status))
    if stats_provider is not None:
        register_pipeline_metrics(registry, stats_provider)
    return registry
