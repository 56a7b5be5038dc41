"""Importing past killmails: files, directories, EVE Ref archives and zKillboard history.

Every source is read as a stream (constant memory): JSONL line by line, JSON arrays item
by item (ijson), `.tar.bz2` archives member by member. Each mail goes through the same
path as the live feed: `match.match` against the tracked set, `rows.RowBatch` (names and
regions filled), `store.write_rows` (idempotent, so a backfill overlapping the live feed
adds nothing twice; a later delivery with a value fills a missing value, never the
reverse).

Bad input never stops the run: good mails are stored, each bad one is reported with its
file and line (or archive member, or killmail id), and `BackfillSummary.ok` is False.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
from peewee import Database
from tqdm import tqdm

from ..db.connect import connected
from ..db.models import BackfillCursor
from ..enrichment.fill import RowFiller
from ..enrichment.fill import enrich as enrich_stored
from ..enrichment.pricing import PricingSummary
from ..enrichment.pricing import run as price_stored
from ..errors import (
    ConfigError,
    EsiError,
    EsiNotFound,
    JobBusy,
    MalformedKillmail,
    SourceError,
    SourceNotFound,
)
from ..sources.esi import EsiClient
from ..sources.everef import EveRefClient
from ..sources.zkill_history import ZkillHistoryClient
from ..statistics import aggregation
from .match import match
from .rows import RowBatch
from .store import write_rows
from .tracked import TrackedSet, load_tracked

log = logging.getLogger(__name__)

ROW_BATCH = 1000
"""Rows buffered before one `write_rows` call (one transaction)."""
MAX_PROBLEMS = 1000
"""Problems kept for the report; more are counted (`malformed`) but not kept, so memory
stays flat on a file of nothing but bad lines."""
AGGREGATE_WAIT = 300.0
"""Seconds to wait for a running statistics job before leaving the work to its next run."""
ZKILL_CHUNK = 100
"""Mails fetched from ESI between two cursor saves in a zKillboard history day."""


@dataclass(frozen=True)
class Item:
    """One mail read from a source, or the reason it could not be read."""

    source: str
    where: str
    envelope: Any = None
    error: str | None = None


@dataclass
class BackfillSummary:
    files: int = 0
    mails_read: int = 0
    matched: int = 0
    rows_written: int = 0
    without_value: int = 0
    malformed: int = 0
    days: int = 0
    days_skipped: int = 0
    problems: list[str] = field(default_factory=list)
    """`file: line N: reason` (or member / killmail id) for each bad input (the first
    MAX_PROBLEMS; `problems_dropped` counts the rest)."""
    problems_dropped: int = 0
    stopped: str | None = None
    """Set when the run stopped early (e.g. ESI down during zKillboard history)."""
    aggregated: bool = False
    statistics: str | None = None
    """What happened to the statistics at the end."""
    pricing: PricingSummary | None = None
    """Mails without a value priced from market prices at the end (`enrichment.pricing`)."""

    def note(self, problem: str) -> None:
        """Record one problem (logged; kept for the report up to MAX_PROBLEMS)."""
        log.debug("backfill: %s", problem)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.problems_dropped += 1

    @property
    def ok(self) -> bool:
        return not self.problems and self.stopped is None

    def lines(self) -> list[str]:
        out = [
            f"files:          {self.files}",
            f"mails read:     {self.mails_read}",
            f"matched:        {self.matched}",
            f"rows written:   {self.rows_written}",
            f"without value:  {self.without_value}",
            f"malformed:      {self.malformed}",
        ]
        if self.days or self.days_skipped:
            out.append(f"history days:   {self.days} ({self.days_skipped} already done)")
        if self.stopped:
            out.append(f"stopped:        {self.stopped}")
        if self.statistics:
            out.append(f"statistics:     {self.statistics}")
        if self.pricing is not None:
            out.append(self.pricing.line())
        return out


# -- readers ------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[Item]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield Item(str(path), f"line {number}", json.loads(line))
            except ValueError as exc:
                yield Item(str(path), f"line {number}", error=f"not JSON ({exc})")


def read_json(path: Path) -> Iterator[Item]:
    """A JSON file holding one mail (object) or many (array), read item by item."""
    with path.open("rb") as fh:
        head = fh.read(64).lstrip()
        fh.seek(0)
        if not head.startswith(b"["):
            try:
                yield Item(str(path), "object", json.load(fh))
            except ValueError as exc:
                yield Item(str(path), "object", error=f"not JSON ({exc})")
            return
        index = 0
        try:
            for index, value in enumerate(ijson.items(fh, "item", use_float=True), start=1):
                yield Item(str(path), f"item {index}", value)
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as exc:
            yield Item(str(path), f"after item {index}", error=f"not JSON ({exc})")


def read_archive(path: Path) -> Iterator[Item]:
    """A tar archive (EVE Ref `killmails-YYYY-MM-DD.tar.bz2`: one ESI JSON per member),
    read member by member without unpacking. A truncated or corrupt archive yields the
    mails before the damage, then one error naming the member where it broke."""
    member_name = "(archive header)"
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                member_name = member.name
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                data = handle.read()
                try:
                    yield Item(str(path), member.name, json.loads(data))
                except ValueError as exc:
                    yield Item(str(path), member.name, error=f"not JSON ({exc})")
                member_name = f"after {member.name}"
    except (tarfile.TarError, EOFError, OSError) as exc:
        yield Item(str(path), member_name, error=f"archive broken ({type(exc).__name__}: {exc})")


def _reader(path: Path) -> Callable[[Path], Iterator[Item]] | None:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return read_jsonl
    if name.endswith(".json"):
        return read_json
    if name.endswith((".tar.bz2", ".tbz2", ".tar.gz", ".tar")):
        return read_archive
    return None


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files named, and the readable files under directories (sorted, recursive)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    candidate = Path(root) / name
                    if _reader(candidate) is not None:
                        yield candidate
        else:
            yield path


# -- the pipeline -------------------------------------------------------------------------


class Backfill:
    """Feeds items through matching and the writer; buffers rows into batches."""

    def __init__(
        self,
        db: Database,
        tracked: TrackedSet,
        *,
        summary: BackfillSummary | None = None,
        progress: Any = None,
    ) -> None:
        self.db = db
        self.tracked = tracked
        self.summary = summary or BackfillSummary()
        self.progress = progress
        self._batch = RowBatch(RowFiller(db))

    def problem(self, item: Item, reason: str) -> None:
        self.summary.malformed += 1
        self.summary.note(f"{item.source}: {item.where}: {reason}")

    def feed(self, item: Item) -> None:
        if item.error is not None:
            self.problem(item, item.error)
            return
        self.summary.mails_read += 1
        if self.progress is not None:
            self.progress.update(1)
        try:
            mail = match(item.envelope, self.tracked)
        except MalformedKillmail as exc:
            self.problem(item, str(exc))
            return
        if mail is None:
            return
        self.summary.matched += 1
        if mail.total_value is None:
            self.summary.without_value += 1
        if mail.zkb_warning:
            log.warning("backfill: killmail %d: %s", mail.killmail_id, mail.zkb_warning)
        if self._batch.add(mail, self.tracked) and len(self._batch) >= ROW_BATCH:
            self.flush()

    def flush(self) -> None:
        rows = self._batch.take()  # regions and names the universe tables know, filled
        if not rows:
            return
        result = write_rows(self.db, rows)
        self.summary.rows_written += result.rows - len(result.failed)
        for row, reason in result.failed:
            self.summary.malformed += 1
            self.summary.note(
                f"killmail {row.killmail_id} (character {row.related_character_id}): "
                f"not written: {reason}"
            )


def _progress_bar(enabled: bool, total: int | None = None, desc: str = "mails") -> Any:
    return tqdm(total=total, unit="mail", desc=desc, disable=not enabled, leave=False)


def _finish(
    db: Database,
    summary: BackfillSummary,
    *,
    enrich: bool,
    aggregate: bool,
    esi: Any,
    price: bool = True,
    market: EsiClient | None = None,
) -> None:
    if enrich:
        enrich_stored(db, esi)
    if price:
        # Before aggregating, so that the statistics count the estimates.
        summary.pricing = price_stored(db, market)
    if aggregate:
        try:
            aggregation.aggregate(db, wait=AGGREGATE_WAIT)
        except JobBusy:
            # Another process holds the statistics job; its next run picks the new rows
            # up through processed_at.
            summary.statistics = "not updated now (statistics job busy); the next run will"
            log.warning("backfill: %s", summary.statistics)
            return
        summary.aggregated = True
        summary.statistics = "re-aggregated"


def backfill_paths(
    db: Database,
    paths: Iterable[str | os.PathLike[str]],
    *,
    track: Iterable[int] = (),
    progress: bool = False,
    enrich: bool = True,
    aggregate: bool = True,
    esi: EsiClient | None = None,
    price: bool = True,
    market: EsiClient | None = None,
) -> BackfillSummary:
    """Import every mail in `paths` (files, directories, archives) for the tracked set.

    At the end regions/names are filled (`enrichment.enrich`, with ESI only when `esi` is
    given), the stored mails without a value priced from market prices (`price`; fetched
    from ESI with `market` when the cache is a day old, else the cache alone) and the
    touched periods re-aggregated (incrementally, via `processed_at`).
    """
    with connected(db):
        tracked = load_tracked(db, track)
        if not tracked:
            raise ConfigError("--track", "no tracked characters in the database and none given")
        summary = BackfillSummary()
        with _progress_bar(progress) as bar:
            runner = Backfill(db, tracked, summary=summary, progress=bar)
            for path in iter_files(paths):
                reader = _reader(path)
                if not path.is_file():
                    runner.problem(Item(str(path), "file"), "no such file")
                    continue
                if reader is None:
                    runner.problem(Item(str(path), "file"), "unknown file type")
                    continue
                summary.files += 1
                for item in reader(path):
                    runner.feed(item)
            runner.flush()
        _finish(
            db, summary, enrich=enrich, aggregate=aggregate, esi=esi, price=price, market=market
        )
    return summary


# -- zKillboard history -------------------------------------------------------------------


def parse_day_range(text: str) -> tuple[dt.date, dt.date]:
    """`FROM..TO` (inclusive) with days as `YYYY-MM-DD` or `YYYYMMDD`; a single day too."""

    def day(part: str) -> dt.date:
        part = part.strip()
        try:
            if len(part) == 8 and part.isdigit():
                return dt.date(int(part[:4]), int(part[4:6]), int(part[6:]))
            return dt.date.fromisoformat(part)
        except ValueError:
            raise ConfigError("--zkill-history", f"{part!r} is not a day (YYYY-MM-DD)") from None

    first, sep, last = text.partition("..")
    start = day(first)
    end = day(last) if sep else start
    if end < start:
        raise ConfigError("--zkill-history", f"{text!r}: the range ends before it starts")
    return start, end


def _cursor(source: str) -> BackfillCursor | None:
    return BackfillCursor.get_or_none(BackfillCursor.source == source)


def _save_cursor(source: str, position: int | None, done: bool) -> None:
    BackfillCursor.insert(
        source=source,
        position=None if position is None else str(position),
        done=done,
        updated_at=dt.datetime.now(dt.UTC),
    ).on_conflict(
        conflict_target=[BackfillCursor.source],
        preserve=[BackfillCursor.position, BackfillCursor.done, BackfillCursor.updated_at],
    ).execute()


ESI_UNKNOWN_MAIL = 422
"""ESI's answer to a killmail id/hash pair it does not know ("Invalid killmail_id and/or
killmail_hash"), besides 404."""


def fetch_killmail(esi: EsiClient, killmail_id: int, hash_: str) -> tuple[int, str, Any]:
    """One mail body from ESI; None when ESI does not know the id/hash pair. ESI down or
    refusing otherwise raises (`EsiUnavailable`, `EsiError`)."""
    try:
        return killmail_id, hash_, esi.killmail(killmail_id, hash_)
    except EsiNotFound:
        return killmail_id, hash_, None
    except EsiError as exc:
        if exc.status == ESI_UNKNOWN_MAIL:
            return killmail_id, hash_, None
        raise


RECENT_DAYS = 2
"""zKillboard re-uploads recent days and a day is complete only the next morning: the
last this many days (today and yesterday, UTC) are read again on every run, never marked
done."""


def backfill_zkill_history(
    db: Database,
    start: dt.date,
    end: dt.date,
    *,
    esi: EsiClient,
    history: ZkillHistoryClient,
    everef: EveRefClient | None = None,
    track: Iterable[int] = (),
    workers: int = 4,
    progress: bool = False,
    enrich: bool = True,
    enrich_from_esi: bool = False,
    aggregate: bool = True,
    price: bool = True,
    market: EsiClient | None = None,
    today: dt.date | None = None,
) -> BackfillSummary:
    """zKillboard history, day by day: `{history}/YYYYMMDD.json` (killmail_id -> hash),
    then the bodies: in bulk from EVE Ref's archive of the day (`everef`, one request),
    and from ESI `/killmails/{id}/{hash}/` only for the mails the archive lacks
    (`workers` at a time, paced by ESI's rate-limit headers; a 429's `Retry-After` is
    waited out and shown in the progress bar).

    Resumable: each day's ESI position is saved in `backfill_cursors` after the rows
    before it are written; finished days are skipped, except the last `RECENT_DAYS`
    (before `today`, UTC), which are read again. ESI or zKillboard down, or Ctrl-C, stops
    the run cleanly (`summary.stopped`); run again to resume. At the end, as for
    `backfill_paths`: enrichment, pricing (`price`, `market`), aggregation."""
    summary = BackfillSummary()
    today = today or dt.datetime.now(dt.UTC).date()
    with connected(db):
        tracked = load_tracked(db, track)
        if not tracked:
            raise ConfigError("--track", "no tracked characters in the database and none given")
        runner = Backfill(db, tracked, summary=summary)
        day = start
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                while day <= end and summary.stopped is None:
                    recent = day > today - dt.timedelta(days=RECENT_DAYS)
                    fetcher = _DayFetch(runner, esi, everef, pool, progress)
                    fetcher.day(day, history, recent)
                    day += dt.timedelta(days=1)
        except KeyboardInterrupt:
            esi.pacer.stop()  # wakes workers waiting for ESI's rate limit
            summary.stopped = "interrupted; run again to resume"
            runner.flush()
            return summary
        runner.flush()
        _finish(
            db,
            summary,
            enrich=enrich,
            aggregate=aggregate,
            esi=esi if enrich_from_esi else None,
            price=price,
            market=market,
        )
    return summary


class _DayFetch:
    """One history day: the day file, EVE Ref's archive, then ESI for the rest."""

    def __init__(
        self,
        runner: Backfill,
        esi: EsiClient,
        everef: EveRefClient | None,
        pool: ThreadPoolExecutor,
        progress: bool,
    ) -> None:
        self.runner = runner
        self.summary = runner.summary
        self.esi = esi
        self.everef = everef
        self.pool = pool
        self.progress = progress

    def day(self, day: dt.date, history: ZkillHistoryClient, recent: bool) -> None:
        summary = self.summary
        stamp = f"{day:%Y%m%d}"
        source = f"zkill-history:{stamp}"
        cursor = _cursor(source)
        if cursor is not None and cursor.done and not recent:
            summary.days_skipped += 1
            return
        pairs = self._index(history, day, stamp)
        if pairs is None:
            return
        after = None
        if cursor is not None and cursor.position and not cursor.done and not recent:
            after = int(cursor.position)
        summary.days += 1
        where = f"zkill history {stamp}"
        with _progress_bar(self.progress, total=len(pairs), desc=stamp) as bar:
            self.runner.progress = bar
            self.esi.pacer.on_wait = lambda seconds, why: bar.set_postfix_str(
                f"ESI rate limit: waiting {seconds:.0f} s ({why})", refresh=True
            )
            try:
                covered = self._from_archive(day, dict(pairs), where)
                rest = [p for p in pairs if p[0] not in covered]
                if after is not None:
                    rest = [p for p in rest if p[0] > after]
                if not self._from_esi(rest, source, where):
                    return
            finally:
                self.runner.progress = None
                self.esi.pacer.on_wait = None
        position = pairs[-1][0] if pairs else after
        _save_cursor(source, position, not recent)

    def _index(
        self, history: ZkillHistoryClient, day: dt.date, stamp: str
    ) -> list[tuple[int, str]] | None:
        summary = self.summary
        try:
            index = history.day(day)
        except SourceNotFound:
            summary.note(f"zKillboard history {stamp}: not found (404)")
            return None
        except SourceError as exc:
            summary.stopped = f"{exc}; run again to resume"
            return None
        if not isinstance(index, dict):
            summary.note(f"zKillboard history {stamp}: not a killmail_id -> hash map")
            return None
        pairs: list[tuple[int, str]] = []
        for raw_id, hash_ in index.items():
            try:
                pairs.append((int(raw_id), str(hash_)))
            except ValueError:
                summary.note(f"zKillboard history {stamp}: bad killmail id {raw_id!r}")
        pairs.sort()
        return pairs

    def _from_archive(self, day: dt.date, hashes: dict[int, str], where: str) -> set[int]:
        """Feed the day's mails found in EVE Ref's archive; their ids. An archive missing,
        unreachable or broken leaves the rest to ESI (logged, not a problem: nothing is
        lost)."""
        covered: set[int] = set()
        if self.everef is None or not hashes:
            return covered
        with tempfile.TemporaryDirectory(prefix="wn-persist-everef-") as tmp:
            path = Path(tmp) / f"killmails-{day:%Y-%m-%d}.tar.bz2"
            try:
                self.everef.download(day, path)
            except SourceError as exc:
                log.warning("backfill: %s; fetching the day's mails from ESI", exc)
                return covered
            for item in read_archive(path):
                body = item.envelope
                if item.error is not None or not isinstance(body, dict):
                    log.warning(
                        "backfill: EVE Ref archive %s: %s: %s; the rest comes from ESI",
                        path.name,
                        item.where,
                        item.error or "not a killmail object",
                    )
                    continue
                try:
                    killmail_id = int(body.get("killmail_id"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                hash_ = hashes.get(killmail_id)
                if hash_ is None or killmail_id in covered:
                    continue  # not in zKillboard's list for the day
                covered.add(killmail_id)
                self.runner.feed(
                    Item(
                        where,
                        f"killmail {killmail_id} (EVE Ref)",
                        _envelope(killmail_id, hash_, body),
                    )
                )
        return covered

    def _from_esi(self, pairs: list[tuple[int, str]], source: str, where: str) -> bool:
        """Fetch `pairs` from ESI chunk by chunk, saving the position after each; False
        when the run stopped."""
        runner, summary = self.runner, self.summary
        for begin in range(0, len(pairs), ZKILL_CHUNK):
            chunk = pairs[begin : begin + ZKILL_CHUNK]
            try:
                fetched = list(self.pool.map(lambda p: fetch_killmail(self.esi, *p), chunk))
            except SourceError as exc:  # ESI down (EsiUnavailable) or refusing
                summary.stopped = f"{exc}; run again to resume"
                runner.flush()
                return False
            for killmail_id, hash_, body in fetched:
                item = Item(where, f"killmail {killmail_id}")
                if body is None:
                    runner.problem(item, "ESI has no such killmail/hash (404/422)")
                    continue
                runner.feed(Item(where, item.where, _envelope(killmail_id, hash_, body)))
            runner.flush()
            _save_cursor(source, chunk[-1][0], False)
        return True


def _envelope(killmail_id: int, hash_: str, body: Any) -> dict[str, Any]:
    return {"killmail_id": killmail_id, "hash": hash_, "esi": body}
