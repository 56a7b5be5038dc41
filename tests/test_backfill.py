"""Backfill from archives, directories, JSON/JSONL files and zKillboard history, through the
live feed's matching and writer; bad input reported with file and line; resumable."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes_esi import *  # noqa: F403 - the fake servers' fixtures

from wn_persist_plugin.cli import main
from wn_persist_plugin.db.models import BackfillCursor, Involvement, TrackedCharacter
from wn_persist_plugin.errors import ConfigError
from wn_persist_plugin.ingest import backfill as bf
from wn_persist_plugin.ingest.backfill import (
    backfill_paths,
    backfill_zkill_history,
    parse_day_range,
)
from wn_persist_plugin.ingest.rows import involvement_rows
from wn_persist_plugin.ingest.store import write_rows
from wn_persist_plugin.ingest.tracked import TrackedSet
from wn_persist_plugin.killmails.parse import parse
from wn_persist_plugin.sources.zkill_history import ZkillHistoryClient


def write_archive(path: Path, envelopes) -> Path:
    """An EVE Ref-style daily archive: one ESI JSON per member, no zkb."""
    with tarfile.open(path, "w:bz2") as archive:
        for env in envelopes:
            data = json.dumps(env["esi"]).encode()
            info = tarfile.TarInfo(f"killmails/{env['killmail_id']}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def characters(envelopes) -> list[int]:
    ids = set()
    for env in envelopes:
        body = env["esi"]
        for who in [body["victim"], *body["attackers"]]:
            if who.get("character_id"):
                ids.add(who["character_id"])
    return sorted(ids)


def expected_keys(envelopes, tracked) -> set[tuple[int, int, str]]:
    """Involvements computed straight from the raw mails."""
    keys = set()
    for env in envelopes:
        body = env["esi"]
        kid = int(body["killmail_id"])
        victim = body["victim"].get("character_id")
        if victim in tracked:
            keys.add((kid, victim, "victim"))
        for attacker in body["attackers"]:
            if attacker.get("character_id") in tracked:
                keys.add((kid, attacker["character_id"], "attacker"))
    return keys


def stored_keys() -> set[tuple[int, int, str]]:
    return set(
        Involvement.select(
            Involvement.killmail_id, Involvement.related_character_id, Involvement.character_role
        ).tuples()
    )


def add_tracked(ids, tracked=True) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    TrackedCharacter.insert_many(
        [
            {"character_id": i, "tracked": tracked, "tracked_since": now, "updated_at": now}
            for i in ids
        ]
    ).execute()


@pytest.fixture
def sample_tracked(real_envelopes) -> list[int]:
    """Every 7th character of the corpus (a few hundred; includes fleet members)."""
    return characters(real_envelopes)[::7]


def test_archive_through_the_live_matching(db, real_envelopes, sample_tracked, tmp_path):
    archive = write_archive(tmp_path / "killmails-2026-07-25.tar.bz2", real_envelopes)
    stored_half, given_half = sample_tracked[::2], sample_tracked[1::2]
    add_tracked(stored_half)
    others = sorted(set(characters(real_envelopes)) - set(sample_tracked))[:200]
    add_tracked(others, tracked=False)  # stored but no longer tracked: not matched
    summary = backfill_paths(db, [archive], track=given_half)
    expected = expected_keys(real_envelopes, set(sample_tracked))
    assert stored_keys() == expected
    assert summary.ok and summary.problems == []
    assert summary.files == 1 and summary.mails_read == len(real_envelopes)
    assert summary.matched == len({k[0] for k in expected})
    assert summary.rows_written == len(expected)
    assert summary.without_value == summary.matched  # EVE Ref archives carry no values
    assert summary.malformed == 0
    assert Involvement.select().where(Involvement.total_value.is_null(False)).count() == 0
    again = backfill_paths(db, [archive], track=given_half)  # idempotent
    assert again.rows_written == len(expected) and stored_keys() == expected
    assert Involvement.select().count() == len(expected)


def test_directory_jsonl_and_json_arrays(db, real_envelopes, real_data_dir, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for env in real_envelopes[:30]:
        (folder / "sub" / f"{env['killmail_id']}.json").write_text(json.dumps(env))
    (folder / "array.json").write_text(json.dumps(real_envelopes[30:60]))
    with (folder / "more.jsonl").open("w") as fh:
        for env in real_envelopes[60:]:
            fh.write(json.dumps(env) + "\n\n")
    (folder / "notes.txt").write_text("not a killmail file")
    tracked = characters(real_envelopes)
    summary = backfill_paths(db, [folder], track=tracked)
    assert summary.ok, summary.problems
    assert summary.files == 32 and summary.mails_read == len(real_envelopes)
    assert stored_keys() == expected_keys(real_envelopes, set(tracked))
    with_zkb = {int(e["killmail_id"]) for e in real_envelopes if e.get("zkb")}
    assert summary.without_value == len(real_envelopes) - len(with_zkb)
    valued = {
        r[0]
        for r in Involvement.select(Involvement.killmail_id)
        .where(Involvement.total_value.is_null(False))
        .tuples()
    }
    assert valued == with_zkb


def test_raw_shapes_from_other_sources(db, real_data_dir):
    raw = real_data_dir / "killmails" / "raw"
    paths = [raw / "zk-activity", raw / "elit-zkb-2017" / "kbresponse.json"]
    everything = []
    for path in bf.iter_files(paths):
        everything.extend(i.envelope for i in bf._reader(path)(path))
    tracked = set()
    for env in everything:
        mail = parse(env)
        tracked.update(p.character_id for p in (mail.victim, *mail.attackers) if p.character_id)
    summary = backfill_paths(db, paths, track=tracked)
    assert summary.ok, summary.problems
    assert summary.mails_read == len(everything) and summary.matched == len(everything)


def test_broken_lines_are_reported_with_file_and_line(
    db, real_envelopes, db_url, tmp_path, monkeypatch
):
    path = tmp_path / "mails.jsonl"
    lines = [json.dumps(e) for e in real_envelopes[:4]]
    lines.insert(1, '{"killmail_id": 1, "esi": {"victim": ')  # cut off
    lines.insert(3, json.dumps({"killmail_id": 2, "esi": {"attackers": []}}))  # no victim
    path.write_text("\n".join(lines) + "\n")
    tracked = characters(real_envelopes[:4])
    summary = backfill_paths(db, [path], track=tracked)
    assert not summary.ok
    assert summary.malformed == 2 and summary.mails_read == 5
    assert summary.problems[0].startswith(f"{path}: line 2: not JSON")
    assert summary.problems[1].startswith(f"{path}: line 4: killmail 2: no victim")
    assert {k[0] for k in stored_keys()} == {int(e["killmail_id"]) for e in real_envelopes[:4]}
    # The command reports the same and exits 1 at the end.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PERSISTENCE_ESI_ENRICHMENT", "false")  # no market prices from ESI
    args = ["backfill", str(path), "--no-progress"] + [f"--track={t}" for t in tracked[:50]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "line 2: not JSON" in result.output and "malformed:      2" in result.output


def test_truncated_archive_keeps_the_good_mails(db, real_envelopes, tmp_path):
    path = write_archive(tmp_path / "killmails-2026-07-25.tar.bz2", real_envelopes)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    tracked = characters(real_envelopes)
    summary = backfill_paths(db, [path], track=tracked)
    assert not summary.ok and summary.malformed == 1
    assert 0 < summary.mails_read < len(real_envelopes)
    problem = summary.problems[0]
    assert (
        problem.startswith(f"{path}: ") and "killmails/" in problem and "archive broken" in problem
    )
    read = real_envelopes[: summary.mails_read]
    assert stored_keys() == expected_keys(read, set(tracked))


def test_backfill_overlapping_the_live_feed(db, real_envelopes, tmp_path):
    with_values = [e for e in real_envelopes if e.get("zkb") and e["zkb"].get("totalValue")][:40]
    tracked = set(characters(with_values)[::3])
    live_first, backfill_first = with_values[:20], with_values[20:]
    # Live feed first (with values), then the archive (no values): nothing doubled or lost.
    live = TrackedSet.of_ids(tracked)
    rows = [r for e in live_first for r in involvement_rows(parse(e), live)]
    write_rows(db, rows)
    values = dict(Involvement.select(Involvement.id, Involvement.total_value).tuples())
    archive = write_archive(tmp_path / "a.tar.bz2", with_values)
    backfill_paths(db, [archive], track=tracked)
    assert Involvement.select().count() == len(expected_keys(with_values, tracked))
    for row_id, value in values.items():
        assert Involvement.get_by_id(row_id).total_value == value  # never the reverse
    # Backfilled without value, then the live feed brings the value: filled in.
    late = [r for e in backfill_first for r in involvement_rows(parse(e), live)]
    unpriced = Involvement.select().where(Involvement.total_value.is_null())
    before = {r.id: r.processed_at for r in unpriced}
    assert before
    write_rows(db, late)
    assert Involvement.select().where(Involvement.total_value.is_null()).count() == 0
    for row_id, stamp in before.items():
        assert Involvement.get_by_id(row_id).processed_at > stamp
    assert Involvement.select().count() == len(expected_keys(with_values, tracked))


def test_no_tracked_characters_is_a_configuration_error(db, tmp_path):
    with pytest.raises(ConfigError, match="--track"):
        backfill_paths(db, [tmp_path])


def test_day_ranges():
    assert parse_day_range("2019-08-01..20190803")[1].day == 3
    assert parse_day_range("2019-08-01")[0] == parse_day_range("2019-08-01")[1]
    with pytest.raises(ConfigError):
        parse_day_range("2019-08-03..2019-08-01")
    with pytest.raises(ConfigError):
        parse_day_range("yesterday")


def _busiest_day(fake_data) -> tuple[str, dict[str, str]]:
    return max(fake_data.history.items(), key=lambda item: len(item[1]))


def _history_client(fake_server) -> ZkillHistoryClient:
    return ZkillHistoryClient(fake_server.url + "/history")


def test_zkill_history_day_then_resume(
    db, fake_server, fake_data, esi_client, real_envelopes, monkeypatch
):
    day, index = _busiest_day(fake_data)
    assert len(index) >= 5
    envelopes = [e for e in real_envelopes if str(e["killmail_id"]) in index]
    tracked = characters(envelopes)
    ids = sorted(int(i) for i in index)
    monkeypatch.setattr(bf, "ZKILL_CHUNK", 2)
    # ESI fails for the third mail: the run stops, the first chunk is kept and remembered.
    fake_server.script(rf"^/killmails/{ids[2]}/", [(503, {})] * 4)
    start, end = parse_day_range(day)
    first = backfill_zkill_history(
        db, start, end, esi=esi_client, history=_history_client(fake_server), track=tracked
    )
    assert first.stopped and "run again" in first.stopped
    assert {k[0] for k in stored_keys()} == set(ids[:2])
    assert BackfillCursor.get().position == str(ids[1])
    fake_server.requests.clear()
    second = backfill_zkill_history(
        db, start, end, esi=esi_client, history=_history_client(fake_server), track=tracked
    )
    assert second.ok, (second.stopped, second.problems)
    fetched = {int(p.split("/")[2]) for _, p, _ in fake_server.asked("/killmails/")}
    assert fetched == set(ids[2:])  # resumed after the cursor
    assert stored_keys() == expected_keys(envelopes, set(tracked))
    fake_server.requests.clear()
    third = backfill_zkill_history(
        db, start, end, esi=esi_client, history=_history_client(fake_server), track=tracked
    )
    assert third.days_skipped == 1 and fake_server.requests == []


def test_zkill_history_bad_hash_is_reported(db, fake_server, fake_data, esi_client, real_envelopes):
    day, index = _busiest_day(fake_data)
    first_id = sorted(index, key=int)[0]
    fake_server.history["20990101"] = {**index, first_id: "0" * 40}
    tracked = characters(real_envelopes)
    start, end = parse_day_range("2099-01-01")
    summary = backfill_zkill_history(
        db, start, end, esi=esi_client, history=_history_client(fake_server), track=tracked
    )
    assert not summary.ok and summary.malformed == 1
    assert f"killmail {first_id}: ESI has no such killmail" in summary.problems[0]
    assert summary.mails_read == len(index) - 1


def test_cli_backfill_and_zkill_history(
    db, db_url, fake_server, fake_data, real_envelopes, tmp_path, monkeypatch
):
    day, index = _busiest_day(fake_data)
    tracked = characters([e for e in real_envelopes if str(e["killmail_id"]) in index])
    add_tracked(tracked)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESI_BASE_URL", fake_server.url)
    monkeypatch.setenv("ZKILL_HISTORY_URL", fake_server.url + "/history")
    monkeypatch.setenv("EVEREF_BASE_URL", fake_server.url)
    result = CliRunner().invoke(
        main, ["backfill", "--zkill-history", f"{day}..{day}", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert f"mails read:     {len(index)}" in result.output
    assert Involvement.select().count() > 0
    result = CliRunner().invoke(main, ["backfill"])
    assert result.exit_code == 2
    monkeypatch.setenv("ZKILL_HISTORY_URL", "r2z2")
    result = CliRunner().invoke(main, ["backfill", "--zkill-history", day])
    assert result.exit_code == 2 and "ZKILL_HISTORY_URL" in result.output
    monkeypatch.delenv("ZKILL_HISTORY_URL")  # a bad setting stops every command
    archive = write_archive(tmp_path / "killmails-2026-07-25.tar.bz2", real_envelopes)
    result = CliRunner().invoke(main, ["backfill", str(archive), "--progress", "--esi"])
    assert result.exit_code == 0, result.output
    assert f"mails read:     {len(real_envelopes)}" in result.output
    # --esi filled names after the import.
    assert Involvement.select().where(Involvement.related_character_name.is_null()).count() == 0


def test_problems_kept_are_capped_but_all_counted(db, real_envelopes, tmp_path, monkeypatch):
    monkeypatch.setattr(bf, "MAX_PROBLEMS", 5)
    path = tmp_path / "junk.jsonl"
    path.write_text("nope\n" * 12 + json.dumps(real_envelopes[0]) + "\n")
    summary = backfill_paths(db, [path], track=characters(real_envelopes[:1]))
    assert summary.malformed == 12 and len(summary.problems) == 5
    assert summary.problems_dropped == 7 and summary.matched == 1


def test_regions_are_filled_as_rows_are_written(db, real_envelopes, real_data_dir, tmp_path):
    from wn_persist_plugin.enrichment import static_data as universe

    universe.import_directory(db, real_data_dir / "universe")
    archive = write_archive(tmp_path / "a.tar.bz2", real_envelopes[:50])
    backfill_paths(db, [archive], track=characters(real_envelopes[:50]), enrich=False)
    assert Involvement.select().count() > 0
    assert Involvement.select().where(Involvement.region_name.is_null()).count() == 0
