"""Bad input: garbage files for `wn-persist backfill` (truncated JSON, binary, wrong
shapes, impossible ISK values) and every kind of bad setting or argument. Each gets one
clear line and exit status 2 (1 for bad data), never a traceback; good data is kept."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
from fakes.r2z2 import FakeR2Z2

from faults.faultkit import (
    FIRST,
    clean_env,
    compare_rows,
    expected_rows,
    feed_env,
    record,
    stored_rows,
    traceback_free,
)
from wn_persist_plugin.db import migrator
from wn_persist_plugin.db.connect import open_database
from wn_persist_plugin.ingest.backfill import backfill_paths

IMPOSSIBLE = ("1e400", "1e300", "-12345.67")


@pytest.fixture(scope="module")
def good(real_envelopes):
    """10 ordinary mails, then 3 with a zkb block and a value (to be made impossible)."""
    ordinary = [m for m in real_envelopes if len(m["esi"]["attackers"]) < 300]
    valued = [m for m in ordinary[10:] if has_value(m)]
    return ordinary[:10] + valued[:3]


def has_value(mail: dict) -> bool:
    zkb = mail.get("zkb")
    return isinstance(zkb, dict) and isinstance(zkb.get("totalValue"), (int, float))


def victims(mails):
    return sorted(
        {
            m["esi"]["victim"]["character_id"]
            for m in mails
            if m["esi"]["victim"].get("character_id")
        }
    )


def garbage_files(folder: Path, good: list[dict]) -> tuple[list[Path], list[dict]]:
    """Good mails, mails with impossible ISK values, and files that are not mails at all.
    Returns the files and the mails whose value is impossible."""
    folder.mkdir()
    (folder / "good.jsonl").write_text("".join(json.dumps(m) + "\n" for m in good[:10]))
    odd = good[10:13]
    lines = []
    for mail, value in zip(odd, IMPOSSIBLE, strict=True):
        text = json.dumps({**mail, "zkb": {**mail["zkb"], "totalValue": "@VALUE@"}})
        lines.append(text.replace('"@VALUE@"', value) + "\n")
    (folder / "isk.jsonl").write_text("".join(lines))
    whole = json.dumps(good[0])
    (folder / "truncated.json").write_text("[" + whole + ', {"killmail_id": 1, "esi": {"vic')
    (folder / "binary.jsonl").write_bytes(random.Random(7).randbytes(4096))
    (folder / "shapes.json").write_text('[1, "text", null, [], {"killmail_id": "x"}, {"esi": 5}]')
    (folder / "shapes.jsonl").write_text('42\n"str"\n{}\n[1, 2]\n{"killmail_id": 3, "esi": []}\n')
    names = [
        "good.jsonl",
        "isk.jsonl",
        "truncated.json",
        "binary.jsonl",
        "shapes.json",
        "shapes.jsonl",
    ]
    return [folder / n for n in names], odd


def test_garbage_files_for_backfill(backend, fresh_url, procs, tmp_path, good):
    files, odd = garbage_files(tmp_path / "in", good)
    track = victims(good)
    expected = expected_rows(good, track)
    outcome = record(f"backfill garbage files [{backend}]")
    migrate(fresh_url)
    args = ["backfill", *(f"--track={t}" for t in track), *map(str, files)]
    env = clean_env(DATABASE_URL=fresh_url, PERSISTENCE_ESI_ENRICHMENT="false")  # no ESI
    proc = procs.run(args, env, timeout=120)
    code = proc.popen.returncode
    stored = stored_rows(fresh_url)
    compare_rows(outcome, expected, stored)
    outcome.exit_code = str(code)
    text = proc.out + proc.err
    problems = []
    if code != 1:
        problems.append(f"exit status {code}, not 1")
    if not traceback_free(text):
        problems.append("a traceback")
    if sorted(stored) != sorted(expected):
        problems.append(f"{outcome.lost} good involvements lost, {outcome.duplicated} duplicated")
    for name in ("truncated.json", "binary.jsonl", "shapes.json", "shapes.jsonl"):
        if not any(name in line for line in text.splitlines() if line.startswith("bad:")):
            problems.append(f"{name} not reported as bad")
    for mail, value in zip(odd, IMPOSSIBLE, strict=True):
        kid = str(mail["killmail_id"])
        if not any(kid in line and "value" in line.lower() for line in text.splitlines()):
            problems.append(f"no warning naming killmail {kid} (totalValue {value})")
    # mails read: good.jsonl, isk.jsonl and the first (whole) item of truncated.json
    valueless = sum(not has_value(m) for m in good[:10] + good[:1]) + len(odd)
    if f"without value:  {valueless}\n" not in proc.out:
        problems.append(f"the summary does not count {valueless} mails without value")
    ids = ",".join(str(m["killmail_id"]) for m in odd)
    values = {
        r[0]
        for r in _query(
            fresh_url, f"SELECT total_value FROM killmails WHERE killmail_id IN ({ids})"
        )
    }
    if values != {None}:
        problems.append(f"impossible values stored: {values}")
    assert not problems, "; ".join(problems) + "\n" + text[-3000:]


def migrate(url: str) -> None:
    db = open_database(url, bind=False)
    try:
        migrator.migrate(db)
    finally:
        db.close()


def _query(url: str, sql: str) -> list[tuple]:
    db = open_database(url, bind=False)
    try:
        return [tuple(r) for r in db.execute_sql(sql).fetchall()]
    finally:
        db.close()


BAD = [
    (
        "PERSISTENCE_QUEUE_SIZE=0",
        {"PERSISTENCE_QUEUE_SIZE": "0"},
        ["run"],
        "PERSISTENCE_QUEUE_SIZE",
        2,
    ),
    (
        "PERSISTENCE_BATCH_SIZE=-1",
        {"PERSISTENCE_BATCH_SIZE": "-1"},
        ["run"],
        "PERSISTENCE_BATCH_SIZE",
        2,
    ),
    (
        "PERSISTENCE_SHUTDOWN_TIMEOUT=-1",
        {"PERSISTENCE_SHUTDOWN_TIMEOUT": "-1"},
        ["run"],
        "PERSISTENCE_SHUTDOWN_TIMEOUT",
        2,
    ),
    (
        "schedule 0 0 31 2 * (never fires)",
        {"PERSISTENCE_AGGREGATION_SCHEDULE": "0 0 31 2 *"},
        ["run"],
        "PERSISTENCE_AGGREGATION_SCHEDULE",
        2,
    ),
    ("stats 9223372036854775808", {}, ["stats", "9223372036854775808"], "9223372036854775808", 2),
    ("backfill --track -3", {}, ["backfill", "--track", "-3", "@good"], "-3", 2),
    (
        "run --track 123456789012345678901",
        {},
        ["run", "--track", "123456789012345678901"],
        "123456789012345678901",
        2,
    ),
]


@pytest.mark.parametrize(
    ("label", "settings", "args", "named", "status"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_setting_one_line_no_traceback(
    backend, fresh_url, procs, tmp_path, good, label, settings, args, named, status
):
    track = victims(good)
    source = tmp_path / "good.jsonl"
    source.write_text("".join(json.dumps(m) + "\n" for m in good))
    db = open_database(fresh_url)
    try:
        migrator.migrate(db)
        backfill_paths(db, [source], track=track, aggregate=False)
    finally:
        db.close()
    before = sorted(stored_rows(fresh_url))
    outcome = record(f"bad setting: {label} [{backend}]", expected=len(before))
    args = [str(source) if a == "@good" else a for a in args]
    with FakeR2Z2(good, first=FIRST) as feed:
        feed.reported_latest = FIRST
        env = feed_env(fresh_url, feed.url, track, **settings)
        proc = procs.start(args, env, name="bad")
        code = proc.wait(15)
        if code is None:
            proc.signal(signal.SIGTERM)
            proc.wait(10)
            proc.kill()
    err = proc.err
    after = sorted(stored_rows(fresh_url))
    compare_rows(outcome, set(before), after)
    outcome.exit_code = "still running after 15 s" if code is None else str(code)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("wn-persist: error:")]
    problems = []
    if code != status:
        problems.append(f"exit status {outcome.exit_code}, not {status}")
    if not traceback_free(err):
        problems.append("a traceback")
    if len(errors) != 1 or not lines or lines[-1] != errors[0]:
        problems.append(f"not one closing error line ({len(errors)} error lines)")
    elif named not in errors[0]:
        problems.append(f"the error does not name {named}: {errors[0]}")
    if after != before:
        problems.append("stored involvements changed")
    assert not problems, "; ".join(problems) + "\n" + err[-2500:]
