"""Helpers of the fault suite: the real `wn-persist` process, the rows it should store,
the report table, request-rate figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wn_persist_plugin.db.connect import open_database, write_transaction
from wn_persist_plugin.host import feed_state

FIRST = 90_000_000
"""First sequence the fake feed serves."""

_FOREIGN = ("MAP_", "R2Z2_", "POSTGRES_", "TRACKED_", "DATABASE_", "PERSISTENCE_", "HOST_")


# -- the report table ------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    expected: int | None = None
    stored: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    peak: int | None = None
    exit_code: str = "-"


REPORT: list[Outcome] = []
"""One row per scenario run, printed at the end of the session."""


def report_table() -> list[str]:
    header = ("scenario", "expected", "stored", "lost", "dup", "peak req/s", "exit")
    rows = [header] + [
        (
            o.scenario,
            *("-" if v is None else str(v) for v in (o.expected, o.stored, o.lost, o.duplicated)),
            "-" if o.peak is None else str(o.peak),
            o.exit_code,
        )
        for o in REPORT
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def record(scenario: str, **figures: Any) -> Outcome:
    """Add (or update) the scenario's row; call early, update as figures come in."""
    for outcome in REPORT:
        if outcome.scenario == scenario:
            break
    else:
        outcome = Outcome(scenario)
        REPORT.append(outcome)
    for key, value in figures.items():
        setattr(outcome, key, value)
    return outcome


def compare_rows(outcome: Outcome, expected: set[tuple], stored: list[tuple]) -> None:
    """Fill expected / stored / lost / duplicated from involvement keys."""
    counts = Counter(stored)
    outcome.expected = len(expected)
    outcome.stored = len(stored)
    outcome.lost = len(expected - set(counts))
    outcome.duplicated = sum(n - 1 for n in counts.values())


# -- the rows a run should store -------------------------------------------------------


def participants(mail: dict) -> tuple[int | None, set[int]]:
    esi = mail["esi"]
    victim = esi["victim"].get("character_id")
    attackers = {a["character_id"] for a in esi["attackers"] if a.get("character_id")}
    return victim, attackers


def tracked_of(mails: Iterable[dict]) -> list[int]:
    """Characters seen on two or more of the mails (tracked characters of a group)."""
    seen: Counter[int] = Counter()
    for mail in mails:
        victim, attackers = participants(mail)
        seen.update(attackers | ({victim} if victim else set()))
    return sorted(cid for cid, n in seen.items() if n >= 2)


def expected_rows(mails: Iterable[dict], tracked: Iterable[int]) -> set[tuple[int, int, str]]:
    ids = set(tracked)
    rows: set[tuple[int, int, str]] = set()
    for mail in mails:
        victim, attackers = participants(mail)
        if victim in ids:
            rows.add((mail["killmail_id"], victim, "victim"))
        rows |= {(mail["killmail_id"], a, "attacker") for a in attackers if a in ids}
    return rows


def stored_rows(url: str) -> list[tuple[int, int, str]]:
    """Every involvement key in the database (duplicates kept)."""
    return [
        tuple(r)
        for r in query(
            url, "SELECT killmail_id, related_character_id, character_role FROM killmails"
        )
    ]


def query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    db = open_database(url, bind=False)
    try:
        return [tuple(r) for r in db.execute_sql(sql, params).fetchall()]
    finally:
        db.close()


def position(url: str) -> int | None:
    """The feed position `wn-persist run` stored."""
    db = open_database(url, bind=False)
    try:
        return feed_state.load_sequence(db)
    finally:
        db.close()


def wipe_statistics(url: str) -> None:
    """Delete every statistics row and watermark (the next aggregation builds anew)."""
    db = open_database(url, bind=False)
    try:
        with write_transaction(db):
            for table in ("killmail_statistics", "statistics_watermarks", "statistics_deletions"):
                db.execute_sql(f"DELETE FROM {table}")
    finally:
        db.close()


STATISTICS_FIGURES = (
    "period_type, period_start, period_end, character_id, kills_count, deaths_count, "
    "isk_destroyed, isk_lost, solo_kills, final_blows, npc_deaths, region_activity, ship_usage"
)


def statistics_rows(url: str) -> list[tuple]:
    """The `killmail_statistics` figures (no ids or timestamps), sorted, as text."""
    rows = query(url, f"SELECT {STATISTICS_FIGURES} FROM killmail_statistics")
    return sorted(tuple(str(v) for v in r) for r in rows)


# -- request rate ----------------------------------------------------------------------


def peak_per_second(times: Iterable[float]) -> int:
    """The most requests in any 1-second window (server-side timestamps)."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the real process ------------------------------------------------------------------


def clean_env(**values: str) -> dict[str, str]:
    """The test process's environment without any wn-persist setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env.update({"PERSISTENCE_RETENTION_DAYS": "100000", "PYTHONUNBUFFERED": "1"})
    env.update(values)
    return env


def feed_env(db_url: str, feed_url: str, tracked: Sequence[int], **values: str) -> dict[str, str]:
    """Settings for `wn-persist run` against the fake feed, fast timings."""
    settings = {
        "DATABASE_URL": db_url,
        "R2Z2_BASE_URL": feed_url,
        "TRACKED_CHARACTER_IDS": ",".join(map(str, tracked)),
        "R2Z2_NOT_FOUND_WAIT": "0.1",
        "R2Z2_TIMEOUT": "2",
        "R2Z2_MAX_BACKOFF": "2",
        "HOST_CHECKPOINT_SECONDS": "1",
        "PROGRESS_INTERVAL_SECONDS": "1",
        # No outside service is reachable from a test: the scheduled job must not spend
        # its tick retrying ESI.
        "PERSISTENCE_ESI_ENRICHMENT": "false",
    }
    return clean_env(**{**settings, **values})


class Proc:
    """`python -m wn_persist_plugin.cli ARGS` with stdout/stderr in files (readable while
    it runs)."""

    def __init__(self, args: Sequence[str], env: dict[str, str], folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        self.args = list(args)
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "wn_persist_plugin.cli", *args],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None when it did not exit within `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)


class Procs:
    """Every process a test starts; all killed when the test ends (pass or fail)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.all: list[Proc] = []

    def start(self, args: Sequence[str], env: dict[str, str], name: str | None = None) -> Proc:
        proc = Proc(args, env, self.folder, name or f"p{len(self.all)}")
        self.all.append(proc)
        return proc

    def run(self, args: Sequence[str], env: dict[str, str], timeout: float = 60) -> Proc:
        """Start and wait; fail when it does not end within `timeout` seconds."""
        proc = self.start(args, env)
        if proc.wait(timeout) is None:
            proc.kill()
            raise AssertionError(f"wn-persist {' '.join(args)} still running after {timeout} s")
        return proc

    def kill_all(self) -> None:
        for proc in self.all:
            proc.kill()


def stop(proc: Proc, timeout: float = 30) -> int:
    """SIGTERM and wait; fail (after a SIGKILL) when it does not exit in time."""
    proc.signal(signal.SIGTERM)
    code = proc.wait(timeout)
    if code is None:
        proc.kill()
        raise AssertionError(f"no exit within {timeout} s of SIGTERM; log:\n{proc.err[-3000:]}")
    return code


def wait_until(condition: Callable[[], Any], timeout: float, what: str, proc: Proc | None = None):
    """Poll `condition` until true; on timeout fail, with the tail of `proc`'s log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise AssertionError(
                f"the process exited while waiting for {what}:\n{proc.err[-3000:]}"
            )
        time.sleep(0.1)
    tail = f"; log:\n{proc.err[-3000:]}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


def traceback_free(text: str) -> bool:
    return "Traceback (most recent call last)" not in text


def settle(condition: Callable[[], Any], timeout: float) -> bool:
    """Poll `condition` up to `timeout` seconds; whether it came true (no failure: the
    assertions after the run say what was wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


