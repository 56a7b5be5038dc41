"""Checking the store against zKillboard, and repairing it: `verify()`.

For each character, zKillboard's API lists the mails it has in the months overlapping the
range (`sources.zkill_api`); they are compared with the stored involvements of that
character:

- **on zKillboard**: the mails zKillboard lists in the range;
- **stored**: the character's stored mails in the range;
- **missing**: listed by zKillboard, not stored for the character;
- **extra**: stored in the range, unknown to zKillboard (mails younger than `FRESH`
  are left out: zKillboard leaves out mails younger than 300 s and its answers are
  cached for an hour);
- **unpriced**: stored mails in the range without a value (`total_value` NULL).

The range is by `killmail_time` when zKillboard sends the bodies (its answer since
2026-06-27). With the old `{killmail_id, zkb}` answer the times are unknown: every mail
of the months asked for counts as in range, and stored and extra are counted over those
whole months (an approximation; see docs/verify.md). The range never starts before
retention's boundary (`statistics_retention.pruned_before`): older mails are gone by
design.

With `repair`, the missing mails go through the one ingest path (`backfill.Backfill`:
match, rows, store): bodies the API sent are used as they are, the others are fetched
from ESI (`backfill.fetch_killmail`, paced by ESI's rate limits). Each character's rows
are written before the next character is asked for, so an interrupted repair keeps what
it wrote and a second run finds only what is left. The periods of the repaired mails are
then re-aggregated (`aggregate(since=earliest day)`).

Stored mails zKillboard lists whose value is not zKillboard's (none, or an estimate from
market prices) take the zkb block it sent (`enrichment.pricing.apply_zkb_values`); their
periods are re-aggregated with the repaired ones.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from peewee import Case, Database, chunked, fn

from ..db.connect import connected
from ..db.joblock import job_lock
from ..db.models import VALUE_ZKB, Involvement, VerifyRun
from ..enrichment.pricing import apply_zkb_values
from ..errors import InvalidParameter, JobBusy, SourceError
from ..killmails.parse import parse_time
from ..redact import first_line
from ..settings import Settings
from ..sources.esi import EsiClient
from ..sources.zkill_api import ZkillApiClient, ZkillEntry
from ..statistics import aggregation
from .backfill import AGGREGATE_WAIT, Backfill, BackfillSummary, Item, fetch_killmail
from .tracked import load_tracked

log = logging.getLogger(__name__)

VERIFY_JOB = "verify"
"""The job lock of a scheduled verification (not the statistics lock)."""
FRESH = dt.timedelta(seconds=3600 + 300)
"""Stored mails younger than this are never counted as extra: zKillboard's answers may be
an hour old, and leave out mails younger than 300 s."""
SOURCE = "zKillboard API"
IN_CHUNK = 500
"""Killmail ids per `IN (...)` query."""


@dataclass
class CharacterCheck:
    """One character's comparison (and repair)."""

    character_id: int
    on_zkillboard: int = 0
    stored: int = 0
    missing: int = 0
    """Listed by zKillboard and not stored, when checked (before any repair)."""
    extra: int = 0
    unpriced: int = 0
    repaired: int = 0
    """Of the missing, how many the repair stored (counted in the database after it)."""
    whole_months: bool = False
    """zKillboard sent no bodies: the range was widened to whole months."""

    @property
    def still_missing(self) -> int:
        return self.missing - self.repaired

    def add(self, other: CharacterCheck) -> None:
        for name in ("on_zkillboard", "stored", "missing", "extra", "unpriced", "repaired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.whole_months = self.whole_months or other.whole_months


@dataclass
class VerifyReport:
    start: dt.date
    """The range's first day as checked (never before retention's boundary)."""
    end: dt.date
    repair: bool
    characters: list[CharacterCheck] = field(default_factory=list)
    requests: int = 0
    """Requests sent to zKillboard."""
    problems: list[str] = field(default_factory=list)
    """Mails the repair could not store, with the reason."""
    stopped: str | None = None
    """Set when the run ended early (a source failed, or it was asked to stop)."""
    statistics: str | None = None
    zkb_values: int = 0
    """Stored mails without a value of zKillboard's that took the one it listed."""

    @property
    def total(self) -> CharacterCheck:
        total = CharacterCheck(0)
        for check in self.characters:
            total.add(check)
        return total

    @property
    def ok(self) -> bool:
        """Nothing left missing and the run went through."""
        return self.stopped is None and self.total.still_missing == 0


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _month_window(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The whole calendar months overlapping `start..end`."""
    first = start.replace(day=1)
    following = (end.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def _stored_in_window(
    db: Database, character_id: int, first: dt.date, last: dt.date
) -> dict[int, tuple[dt.datetime, bool]]:
    """The character's stored mails in `first..last`: id -> (kill time, without value)."""
    I = Involvement  # noqa: E741 - the model's usual short name
    query = (
        I.select(
            I.killmail_id,
            fn.MIN(I.kill_time),
            fn.MAX(Case(None, [(I.total_value.is_null(), 1)], 0)),
        )
        .where(
            (I.related_character_id == character_id)
            & (I.kill_time >= _day_start(first))
            & (I.kill_time < _day_start(last + dt.timedelta(days=1)))
        )
        .group_by(I.killmail_id)
        .tuples()
    )
    out: dict[int, tuple[dt.datetime, bool]] = {}
    rows = cast(Iterable[tuple[int, Any, int]], query.execute(db))
    for killmail_id, kill_time, unpriced in rows:
        when = I.kill_time.python_value(kill_time)
        if isinstance(when, dt.datetime):
            out[int(killmail_id)] = (when, bool(unpriced))
    return out


def _stored_among(db: Database, character_id: int, ids: Iterable[int]) -> set[int]:
    """Which of `ids` are stored for the character (at any time)."""
    I = Involvement  # noqa: E741
    found: set[int] = set()
    for chunk in chunked(sorted(ids), IN_CHUNK):
        query = (
            I.select(I.killmail_id)
            .where((I.related_character_id == character_id) & I.killmail_id.in_(chunk))
            .distinct()
            .tuples()
        )
        found.update(int(kid) for (kid,) in cast(Iterable[tuple[int]], query.execute(db)))
    return found


# ---- zKillboard's values for stored mails without one ------------------------------------


def collect_zkb_values(
    db: Database, character_id: int, listed: Mapping[int, ZkillEntry]
) -> dict[int, tuple[dt.datetime, Mapping[str, Any]]]:
    """The character's stored mails that zKillboard lists and whose value is not
    zKillboard's (`value_source` `none` or `esi_prices`): killmail id -> (kill time, the
    raw zkb block zKillboard sent)."""
    I = Involvement  # noqa: E741
    values: dict[int, tuple[dt.datetime, Mapping[str, Any]]] = {}
    for chunk in chunked(sorted(listed), IN_CHUNK):
        query = (
            I.select(I.killmail_id, fn.MIN(I.kill_time))
            .where(
                (I.related_character_id == character_id)
                & I.killmail_id.in_(chunk)
                & (I.value_source != VALUE_ZKB)
            )
            .group_by(I.killmail_id)
            .tuples()
        )
        for killmail_id, kill_time in cast(Iterable[tuple[int, Any]], query.execute(db)):
            when = I.kill_time.python_value(kill_time)
            zkb = listed[int(killmail_id)].zkb
            if isinstance(when, dt.datetime) and isinstance(zkb, Mapping):
                values[int(killmail_id)] = (when, zkb)
    return values


# ---- the run ----------------------------------------------------------------------------


class _Verifier:
    def __init__(
        self,
        db: Database,
        report: VerifyReport,
        client: ZkillApiClient,
        *,
        esi: EsiClient | None,
        runner: Backfill | None,
        now: dt.datetime,
        boundary: dt.date | None,
    ) -> None:
        self.db = db
        self.boundary = boundary
        self.report = report
        self.client = client
        self.esi = esi
        self.runner = runner
        self.now = now
        self.earliest: dt.date | None = None
        """The earliest day of a repaired or newly valued mail."""

    def in_range(self, entry: ZkillEntry) -> bool:
        if entry.kill_time is None:
            return True  # old answer: the whole month counts
        return self.report.start <= entry.kill_time.date() <= self.report.end

    def character(self, character_id: int) -> CharacterCheck:
        start, end = self.report.start, self.report.end
        check = CharacterCheck(character_id)
        listed = {
            e.killmail_id: e
            for e in self.client.killmails(character_id, start, end)
            if self.in_range(e)
        }
        check.whole_months = any(e.kill_time is None for e in listed.values())
        first, last = (start, end)
        if check.whole_months:
            first, last = _month_window(start, end)
            if self.boundary is not None:
                first = max(first, self.boundary)  # nothing older is kept
        with connected(self.db):
            stored = _stored_in_window(self.db, character_id, first, last)
            known = _stored_among(self.db, character_id, listed)
        missing = [listed[i] for i in sorted(listed) if i not in known]
        fresh_after = self.now - FRESH
        check.on_zkillboard = len(listed)
        check.stored = len(stored)
        check.missing = len(missing)
        check.extra = sum(
            1 for i, (when, _) in stored.items() if i not in listed and when <= fresh_after
        )
        check.unpriced = sum(1 for _, no_value in stored.values() if no_value)
        if missing and self.runner is not None:
            self.repair(check, missing)
        self.take_zkb_values(character_id, listed)
        return check

    def take_zkb_values(self, character_id: int, listed: Mapping[int, ZkillEntry]) -> None:
        """zKillboard's values for the character's stored mails without one of its own."""
        with connected(self.db):
            found = collect_zkb_values(self.db, character_id, listed)
            if not found:
                return
            changed = apply_zkb_values(self.db, {k: zkb for k, (_, zkb) in found.items()})
        self.report.zkb_values += changed
        if changed:
            self.note_day(min(when for when, _ in found.values()).date())

    def note_day(self, day: dt.date) -> None:
        """A day whose periods the run changed (re-aggregated at the end)."""
        self.earliest = day if self.earliest is None else min(self.earliest, day)

    def repair(self, check: CharacterCheck, missing: Sequence[ZkillEntry]) -> None:
        """Store the missing mails through the ingest path; count what got stored."""
        runner = self.runner
        assert runner is not None
        where = f"character {check.character_id}"
        fed: dict[int, dt.date] = {}
        outside = 0
        try:
            for entry in missing:
                envelope: dict[str, Any] | None = None
                day = entry.kill_time.date() if entry.kill_time is not None else None
                if entry.body is not None:
                    envelope = entry.envelope()
                elif entry.hash is None:
                    self.problem(entry, "zKillboard gave no hash to fetch it from ESI")
                elif self.esi is None:
                    self.problem(entry, "no body, and no ESI client to fetch it")
                else:
                    _, _, body = fetch_killmail(self.esi, entry.killmail_id, entry.hash)
                    if body is None:
                        self.problem(entry, "ESI has no such killmail/hash (404/422)")
                    else:
                        envelope = {
                            "killmail_id": entry.killmail_id,
                            "hash": entry.hash,
                            "esi": body,
                            "zkb": entry.zkb,
                        }
                        day = _body_day(body)
                        if day is not None and not self.report.start <= day <= self.report.end:
                            outside += 1  # its month, not its day, was in range
                            continue
                if envelope is None:
                    continue
                runner.feed(Item(SOURCE, f"{where}: killmail {entry.killmail_id}", envelope))
                if day is not None:
                    fed[entry.killmail_id] = day
        finally:
            runner.flush()  # whatever was fed is written, even when ESI stopped the run
            with connected(self.db):
                stored = _stored_among(
                    self.db, check.character_id, (e.killmail_id for e in missing)
                )
            check.missing -= outside
            check.on_zkillboard -= outside
            check.repaired = len(stored)
            days = [fed[i] for i in stored if i in fed]
            if days:
                self.note_day(min(days))

    def problem(self, entry: ZkillEntry, reason: str) -> None:
        self.report.problems.append(f"killmail {entry.killmail_id}: {reason}")


def _body_day(body: Any) -> dt.date | None:
    try:
        return parse_time(body.get("killmail_time")).date()
    except (AttributeError, ValueError):
        return None


def verify(
    db: Database,
    characters: Iterable[int],
    start: dt.date,
    end: dt.date,
    client: ZkillApiClient,
    *,
    repair: bool = False,
    esi: EsiClient | None = None,
    aggregate: bool = True,
    aggregate_wait: float = AGGREGATE_WAIT,
    now: dt.datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_character: Callable[[CharacterCheck], None] | None = None,
) -> VerifyReport:
    """Compare each character's stored mails of `start..end` (UTC days, inclusive) with
    zKillboard's; with `repair`, store the missing ones and re-aggregate their periods.

    A source failing (zKillboard or ESI unavailable, an `{"error"}` answer), Ctrl-C or
    `should_stop()` ends the run early: the report says so in `stopped` and holds the
    characters done (their repairs are stored). `on_character` is called after each."""
    if end < start:
        raise InvalidParameter("to", f"{end} is before {start}")
    characters = [int(c) for c in characters]
    now = now or dt.datetime.now(dt.UTC)
    with connected(db):
        boundary = aggregation.frozen_before(db)
        tracked = load_tracked(db, characters) if repair else None
    report = VerifyReport(max(start, boundary) if boundary else start, end, repair)
    if report.start > end:
        return report
    summary = BackfillSummary()
    runner = Backfill(db, tracked, summary=summary) if tracked is not None else None
    verifier = _Verifier(db, report, client, esi=esi, runner=runner, now=now, boundary=boundary)
    requests_before = client.requests
    try:
        for character_id in characters:
            if should_stop is not None and should_stop():
                report.stopped = "stopped before the end; run again to finish"
                break
            try:
                check = verifier.character(character_id)
            except SourceError as exc:
                report.stopped = f"{first_line(exc)}; run again to finish"
                break
            except KeyboardInterrupt:
                report.stopped = "interrupted; run again to finish"
                break
            report.characters.append(check)
            if on_character is not None:
                on_character(check)
    finally:
        report.requests = client.requests - requests_before
        report.problems.extend(summary.problems)
    if verifier.earliest is not None and aggregate:
        try:
            aggregation.aggregate(db, since=verifier.earliest, wait=aggregate_wait)
            report.statistics = f"re-aggregated from {verifier.earliest}"
        except JobBusy:
            report.statistics = "not updated now (statistics job busy); its next run will"
            log.warning("verify: %s", report.statistics)
    return report


# ---- recorded runs and the scheduled job ------------------------------------------------


def start_run(db: Database, start: dt.date, end: dt.date, *, scheduled: bool) -> int:
    """Record a run as started; its id."""
    with connected(db):
        return int(
            VerifyRun.insert(
                started_at=dt.datetime.now(dt.UTC), scheduled=scheduled, from_day=start, to_day=end
            ).execute(db)
        )


def finish_run(
    db: Database, run_id: int, report: VerifyReport | None, error: str | None = None
) -> None:
    """Record a run's counts (`missing`: what is still missing after its repair)."""
    values: dict[str, Any] = {"finished_at": dt.datetime.now(dt.UTC), "error": error}
    if report is not None:
        total = report.total
        values.update(
            from_day=report.start,
            characters=len(report.characters),
            on_zkillboard=total.on_zkillboard,
            stored=total.stored,
            missing=total.still_missing,
            extra=total.extra,
            unpriced=total.unpriced,
            repaired=total.repaired,
        )
        if error is None and report.stopped is not None:
            values["error"] = report.stopped
    with connected(db):
        VerifyRun.update(**values).where(VerifyRun.id == run_id).execute(db)


def record(db: Database, report: VerifyReport, *, scheduled: bool = False) -> None:
    """Record a finished run (the command line's)."""
    finish_run(db, start_run(db, report.start, report.end, scheduled=scheduled), report)


def last_verify_run(db: Database) -> VerifyRun | None:
    """The latest run that went through (no error), any process; None before the first."""
    query = (
        VerifyRun.select()
        .where(VerifyRun.finished_at.is_null(False) & VerifyRun.error.is_null())
        .order_by(VerifyRun.finished_at.desc(), VerifyRun.id.desc())
        .limit(1)
    )
    return next(iter(query.execute(db)), None)


def _scheduled_since(db: Database, tick: dt.datetime) -> bool:
    """A scheduled run has started at or after `tick` (by any process)."""
    latest = VerifyRun.select(fn.MAX(VerifyRun.started_at)).where(VerifyRun.scheduled).scalar(db)
    when = VerifyRun.started_at.python_value(latest) if latest is not None else None
    return isinstance(when, dt.datetime) and when >= tick


def run_scheduled_verify(
    db: Database,
    settings: Settings,
    *,
    client: ZkillApiClient,
    esi: EsiClient | None,
    tick: dt.datetime | None = None,
    today: dt.date | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str:
    """The scheduled job: verify and repair the last `settings.verify.days` days of every
    tracked character, once per `tick` across processes (the `verify` job lock, and the
    runs recorded in `verify_runs`). Aggregation is never waited for (a busy statistics
    job takes the new rows on its next run). Returns a one-line result: `busy`,
    `already done`, `no tracked characters`, or the counts; a source failure is recorded
    and returned as `stopped: ...` (the next scheduled run tries again)."""
    today = today or dt.datetime.now(dt.UTC).date()
    end = today
    start = today - dt.timedelta(days=settings.verify.days - 1)
    try:
        with job_lock(db, VERIFY_JOB, wait=0), connected(db):
            if tick is not None and _scheduled_since(db, tick):
                return "already done"
            characters = sorted(load_tracked(db).ids)
            if not characters:
                return "no tracked characters"
            run_id = start_run(db, start, end, scheduled=True)
            try:
                report = verify(
                    db, characters, start, end, client,
                    repair=True, esi=esi, aggregate_wait=0, should_stop=should_stop,
                )  # fmt: skip
            except Exception as exc:
                finish_run(db, run_id, None, f"{type(exc).__name__}: {first_line(exc)}")
                raise
            finish_run(db, run_id, report)
    except JobBusy:
        log.info("verify job skipped: another process is running it")
        return "busy"
    total = report.total
    counts = (
        f"{len(report.characters)} characters, {total.on_zkillboard} on zKillboard, "
        f"{total.missing} missing, {total.repaired} repaired, {total.extra} extra, "
        f"{total.unpriced} unpriced"
    )
    if report.stopped is not None:
        log.warning("verify job stopped: %s (%s)", report.stopped, counts)
        return f"stopped: {report.stopped}"
    log.info("verify job: %s", counts)
    return counts
