"""The statistics job on a schedule: a daemon thread that runs aggregation, then retention.

`PERSISTENCE_AGGREGATION_SCHEDULE` is a standard 5-field cron expression, evaluated in UTC
by croniter. The thread's job loop is the `schedule` package: after each run the next fire
time comes from croniter and one `schedule` job is armed for it. A failing job is logged
and tried again at the next fire time; the thread never dies of it. Processes sharing a
database never run the job at once (`joblock`): the one that finds the lock taken skips
that run.

With `PERSISTENCE_REPORT_SCHEDULE` set, the same thread also posts the weekly Discord
report on that cron (`reports.job.run_scheduled_report`: once per period, its own lock).
A failed post is logged and tried again at the next report time; it never delays or stops
the statistics job beyond the post itself.

With `PERSISTENCE_VERIFY_SCHEDULE` set, the thread also starts the verification against
zKillboard on that cron (`ingest.verify.run_scheduled_verify`: once per tick across
processes, its own lock). At one request a second it may take a while, so it runs in a
thread of its own and never holds up the statistics job; a tick that finds the previous
verification still running is skipped. A failure is logged in one line and the next
tick tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import schedule
from croniter import croniter
from peewee import Database

from ..db.joblock import STATISTICS_JOB, job_lock
from ..errors import JobBusy
from ..ingest.verify import run_scheduled_verify
from ..redact import first_line
from ..reports.discord import mask_webhook
from ..reports.job import run_scheduled_report
from ..settings import Settings
from ..sources.esi import EsiClient
from ..sources.zkill_api import ZkillApiClient
from .aggregation import AggregateResult, aggregate, last_run_started
from .retention import PruneResult, prune

log = logging.getLogger(__name__)

Step = Callable[[Database], object]
VerifyJob = Callable[[Database, "dt.datetime | None", Callable[[], bool]], str]
"""The verification job: (database, tick, should_stop) -> one-line result."""
ONE_SECOND = dt.timedelta(seconds=1)
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class JobReport:
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    aggregate: AggregateResult | None = None
    prune: PruneResult | None = None
    skipped: bool = False
    """Another process held the job lock; nothing was done."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _default_verify_job(settings: Settings) -> VerifyJob:
    """`run_scheduled_verify` with clients made on first use (kept for later runs)."""
    clients: list[Any] = []

    def job(db: Database, tick: dt.datetime | None, should_stop: Callable[[], bool]) -> str:
        if not clients:
            contact = settings.user_agent_contact
            clients.append(ZkillApiClient(settings.verify.api_url, contact=contact))
            clients.append(EsiClient(settings.esi, contact=contact))
        return run_scheduled_verify(
            db, settings, client=clients[0], esi=clients[1], tick=tick, should_stop=should_stop
        )

    return job


class Scheduler:
    """Runs the statistics job on the cron schedule in a daemon thread.

    `before_aggregation` steps run first in every job, in order (region enrichment goes
    there); `clock` is the UTC time source (tests move it). The schedule is
    `settings.aggregation_schedule`, checked by `load_settings` (it parses and fires).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        before_aggregation: Sequence[Step] = (),
        clock: Clock = _utc_now,
        verify_job: VerifyJob | None = None,
    ) -> None:
        self.cron = settings.aggregation_schedule
        self.retention_days = settings.retention_days
        self.db = db
        self.before_aggregation: list[Step] = list(before_aggregation)
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self.last_report: JobReport | None = None
        self._jobs = schedule.Scheduler()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.next_fire: dt.datetime | None = None
        self.settings = settings
        self.report_cron = settings.reports.schedule
        self.report_next_fire: dt.datetime | None = None
        self.report_runs = 0
        self.report_failures = 0
        self.last_report_result: str | None = None
        self.verify_cron = settings.verify.schedule
        self.verify_next_fire: dt.datetime | None = None
        self.verify_runs = 0
        self.verify_failures = 0
        self.last_verify_result: str | None = None
        self.verify_job: VerifyJob = verify_job or _default_verify_job(settings)
        self._verify_thread: threading.Thread | None = None

    # --- the job ---------------------------------------------------------------------

    def run_now(self, tick: dt.datetime | None = None) -> JobReport:
        """Run the job once, synchronously: enrichment steps, aggregation, retention.

        `tick` is the scheduled time this run is for: when another process has already
        started an aggregation since then (it held the lock first and finished), this run
        is skipped, so a tick runs the job once however many instances share the database.
        Never raises: a failure is logged and returned in the report."""
        report = JobReport(started_at=self.clock())
        try:
            with job_lock(self.db, STATISTICS_JOB, wait=0):
                done_at = last_run_started(self.db) if tick is not None else None
                if tick is not None and done_at is not None and done_at >= tick:
                    report.skipped = True
                    log.info(
                        "statistics job skipped: another process ran it for the %s tick",
                        tick.strftime("%Y-%m-%d %H:%M"),
                    )
                    return report
                self._job(report)
        except JobBusy:
            report.skipped = True
            log.info("statistics job skipped: another process is running it")
        except Exception as exc:  # noqa: BLE001 - the job must never kill its caller
            report.error = f"{type(exc).__name__}: {first_line(exc)}"
            self.failures += 1
            log.exception("statistics job failed; it runs again at the next scheduled time")
        finally:
            report.finished_at = self.clock()
            self.runs += 1
            self.last_report = report
            if not self.db.is_closed() and self._thread is threading.current_thread():
                self.db.close()
        return report

    def _job(self, report: JobReport) -> None:
        # Enrichment runs here, before aggregation (`before_aggregation`), so regions found
        # now count in this run's statistics.
        # A failing step (ESI answering garbage, say) is logged and counted, and the
        # statistics are still brought up to date: enrichment is never a reason to stop.
        for step in self.before_aggregation:
            try:
                step(self.db)
            except Exception as exc:  # noqa: BLE001 - keep aggregating whatever a step does
                name = getattr(step, "__name__", type(step).__name__)
                report.error = f"{name}: {type(exc).__name__}: {first_line(exc)}"
                self.failures += 1
                log.exception("statistics job: step %s failed; aggregating anyway", name)
        report.aggregate = aggregate(self.db)
        report.prune = prune(self.db, self.retention_days)

    def run_report_now(self) -> str:
        """Run the report job once, synchronously (never raises: a failure is logged,
        counted and returned as `failed: ...`)."""
        try:
            result = run_scheduled_report(self.db, self.settings, self.clock())
        except Exception as exc:  # noqa: BLE001 - the report must never kill the thread
            self.report_failures += 1
            result = f"failed: {type(exc).__name__}: {mask_webhook(first_line(exc))}"
            log.warning("report job %s; it runs again at the next report time", result)
        finally:
            self.report_runs += 1
            if not self.db.is_closed() and self._thread is threading.current_thread():
                self.db.close()
        self.last_report_result = result
        return result

    def run_verify_now(self, tick: dt.datetime | None = None) -> str:
        """Run the verification job once, synchronously, for `tick` (never raises: a
        failure is logged in one line, counted and returned as `failed: ...`)."""
        try:
            result = self.verify_job(self.db, tick, self._stop.is_set)
        except Exception as exc:  # noqa: BLE001 - the verification must never kill a thread
            self.verify_failures += 1
            result = f"failed: {type(exc).__name__}: {first_line(exc)}"
            log.warning("verify job %s; it runs again at the next verify time", result)
        finally:
            self.verify_runs += 1
            if not self.db.is_closed() and threading.current_thread() is self._verify_thread:
                self.db.close()
        if result.startswith("stopped"):
            self.verify_failures += 1
        self.last_verify_result = result
        return result

    @property
    def verifying(self) -> bool:
        thread = self._verify_thread
        return thread is not None and thread.is_alive()

    # --- the thread ------------------------------------------------------------------

    def fire_after(self, moment: dt.datetime) -> dt.datetime:
        """The first cron time strictly after `moment` (UTC)."""
        return croniter(self.cron, moment.astimezone(dt.UTC)).get_next(dt.datetime)

    def _arm(self) -> None:
        now = self.clock()
        self.next_fire = self.fire_after(now)
        delay = max(1, math.ceil((self.next_fire - now).total_seconds()))
        self._jobs.every(delay).seconds.do(self._fire)
        log.debug("statistics job next at %s", self.next_fire.isoformat())

    def _arm_report(self) -> None:
        if self.report_cron is None:
            return
        now = self.clock()
        self.report_next_fire = croniter(self.report_cron, now.astimezone(dt.UTC)).get_next(
            dt.datetime
        )
        delay = max(1, math.ceil((self.report_next_fire - now).total_seconds()))
        self._jobs.every(delay).seconds.do(self._fire_report).tag("report")

    def _arm_verify(self) -> None:
        if self.verify_cron is None:
            return
        now = self.clock()
        self.verify_next_fire = croniter(self.verify_cron, now.astimezone(dt.UTC)).get_next(
            dt.datetime
        )
        delay = max(1, math.ceil((self.verify_next_fire - now).total_seconds()))
        self._jobs.every(delay).seconds.do(self._fire_verify).tag("verify")

    def _fire_verify(self) -> type[schedule.CancelJob]:
        tick = self.verify_next_fire
        early = tick is not None and self.clock() < tick - ONE_SECOND
        try:
            if early:
                pass
            elif self.verifying:
                log.info("verify job still running; this tick is skipped")
            else:
                self._verify_thread = threading.Thread(
                    target=self.run_verify_now, args=(tick,), name="wn-persist-verify", daemon=True
                )
                self._verify_thread.start()
        finally:
            self._arm_verify()
        return schedule.CancelJob

    def _fire_report(self) -> type[schedule.CancelJob]:
        early = self.report_next_fire is not None and (
            self.clock() < self.report_next_fire - ONE_SECOND
        )
        try:
            if not early:
                self.run_report_now()
        finally:
            self._arm_report()
        return schedule.CancelJob

    def _fire(self) -> type[schedule.CancelJob]:
        # `schedule` counts in local wall-clock time: a daylight-saving jump can wake it an
        # hour early. The cron time is UTC; before it, only re-arm.
        early = self.next_fire is not None and self.clock() < self.next_fire - ONE_SECOND
        try:
            if not early:
                self.run_now(self.next_fire)
        finally:
            self._arm()
        return schedule.CancelJob

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._jobs.run_pending()
            except Exception:  # noqa: BLE001 - keep the thread alive whatever happens
                log.exception("statistics scheduler loop error")
                if not self._jobs.jobs:
                    self._arm()
            idle = self._jobs.idle_seconds
            self._stop.wait(1.0 if idle is None else min(max(idle, 0.05), 30.0))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the daemon thread (no-op when it runs already)."""
        if self.running:
            return
        self._stop.clear()
        self._jobs.clear()
        self._arm()
        self._arm_report()
        self._arm_verify()
        self._thread = threading.Thread(
            target=self._loop, name="wn-persist-statistics", daemon=True
        )
        self._thread.start()
        log.info("statistics scheduler started (%s UTC)", self.cron)
        if self.report_cron is not None:
            log.info("weekly report scheduled (%s UTC)", self.report_cron)
        if self.verify_cron is not None:
            log.info("verification against zKillboard scheduled (%s UTC)", self.verify_cron)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread, waiting up to `timeout` seconds for a running job to end.
        True when the thread has ended."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        verifying = self._verify_thread
        if verifying is not None:
            verifying.join(max(0.0, timeout / 2))  # it stops between two characters
        stopped = not thread.is_alive()
        if stopped:
            self._thread = None
            self._jobs.clear()
            log.info("statistics scheduler stopped")
        else:
            log.warning("statistics job still running after %.1fs; left as a daemon", timeout)
        return stopped
