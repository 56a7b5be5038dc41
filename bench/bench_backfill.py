"""Backfill throughput and memory over a large EVE Ref-style archive made from the real
corpus (killmail ids shifted so every copy is a new mail), with 1,000 tracked characters,
on SQLite and PostgreSQL.

Each measurement runs in its own process so its peak RSS (ru_maxrss) is its own. The
baseline, in the same run, only reads and JSON-decodes the same archive. Memory is "flat"
when the peak for the full archive is about the peak for a fifth of it.

    .venv/bin/python bench/bench_backfill.py [--mails 25000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import DATA_DIR, database_urls, real_envelopes  # noqa: E402

ID_SHIFT = 1_000_000_000
TRACKED = 1000


CHARACTER_SHIFT = 10_000_000_000


def _shift_characters(body: dict, copy: int) -> dict:
    """The mail with every character id moved by `copy` steps: each copy of the corpus
    is flown by different pilots."""
    if copy == 0:
        return body

    def moved(who: dict) -> dict:
        if who.get("character_id"):
            return {**who, "character_id": who["character_id"] + copy * CHARACTER_SHIFT}
        return who

    return {
        **body,
        "victim": moved(body["victim"]),
        "attackers": [moved(a) for a in body["attackers"]],
    }


def make_archive(path: Path, mails: int, spread: bool = False) -> None:
    corpus = real_envelopes()
    with tarfile.open(path, "w:bz2") as archive:
        for i in range(mails):
            body = dict(corpus[i % len(corpus)]["esi"])
            if spread:
                body = _shift_characters(body, i // len(corpus))
            body["killmail_id"] = ID_SHIFT + i
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(f"killmails/{ID_SHIFT + i}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def tracked_characters(copies: int = 1) -> list[int]:
    """1,000 characters spread evenly over the pilots of the archive (over all copies
    when the copies have their own pilots)."""
    ids: set[int] = set()
    for env in real_envelopes():
        for who in [env["esi"]["victim"], *env["esi"]["attackers"]]:
            if who.get("character_id"):
                ids.add(int(who["character_id"]))
    every = sorted(i + c * CHARACTER_SHIFT for c in range(copies) for i in ids)
    return every[:: max(1, len(every) // TRACKED)][:TRACKED]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_baseline(archive: Path) -> dict:
    from wn_persist_plugin.ingest.backfill import read_archive

    start = time.perf_counter()
    count = sum(1 for item in read_archive(archive) if item.envelope is not None)
    return {"mails": count, "seconds": time.perf_counter() - start, "rss": peak_rss_mib()}


def worker_backfill(archive: Path, url: str, copies: int) -> dict:
    import datetime as dt

    from wn_persist_plugin.db import migrator
    from wn_persist_plugin.db.connect import open_database
    from wn_persist_plugin.db.models import Involvement, TrackedCharacter
    from wn_persist_plugin.enrichment import static_data as universe
    from wn_persist_plugin.ingest.backfill import backfill_paths

    db = open_database(url)
    migrator.migrate(db)
    with db.connection_context():
        db.execute_sql("DELETE FROM killmails")
        db.execute_sql("DELETE FROM tracked_characters")
        now = dt.datetime.now(dt.UTC)
        TrackedCharacter.insert_many(
            [
                {"character_id": c, "tracked_since": now, "updated_at": now}
                for c in tracked_characters()
            ]
        ).execute()
    universe.import_directory(db, DATA_DIR / "universe")
    start = time.perf_counter()
    summary = backfill_paths(db, [archive], enrich=True, aggregate=True)
    seconds = time.perf_counter() - start
    with db.connection_context():
        rows = Involvement.select().count()
        regions = Involvement.select().where(Involvement.region_id.is_null(False)).count()
    return {
        "mails": summary.mails_read,
        "matched": summary.matched,
        "rows": rows,
        "with_region": regions,
        "aggregated": summary.aggregated,
        "seconds": seconds,
        "rss": peak_rss_mib(),
    }


def run_worker(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=25_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="each copy of the corpus gets its own pilots (a realistic match rate); "
        "default: the same pilots in every copy (almost every mail matches: worst case)",
    )
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, archive, *rest = args.worker
        result = (
            worker_baseline(Path(archive))
            if kind == "baseline"
            else worker_backfill(Path(archive), rest[0], int(rest[1]))
        )
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"full": args.mails, "fifth": args.mails // 5}
        archives = {}
        for label, count in sizes.items():
            path = Path(tmp) / f"killmails-{label}.tar.bz2"
            start = time.perf_counter()
            make_archive(path, count, spread=args.spread)
            archives[label] = path
            print(
                f"archive {label}: {count} mails, {path.stat().st_size / 2**20:.1f} MiB bz2 "
                f"(made in {time.perf_counter() - start:.1f} s)"
            )
        with database_urls(postgres=not args.no_postgres) as urls:
            results = {}
            for label, path in archives.items():
                results[("baseline", label)] = run_worker("baseline", str(path))
                for backend, url in urls.items():
                    copies = -(-sizes[label] // 529) if args.spread else 1
                    results[(backend, label)] = run_worker("backfill", str(path), url, str(copies))
        base = results[("baseline", "full")]
        base_rate = base["mails"] / base["seconds"]
        scenario = "spread (own pilots per copy)" if args.spread else "dense (same pilots)"
        print(f"\nscenario: {scenario}")
        print(f"{TRACKED} tracked characters; baseline = read + JSON-decode the same archive")
        print(
            f"{'run':<22}{'mails':>8}{'rows':>8}{'seconds':>9}{'mails/s':>9}{'x base':>8}"
            f"{'peak MiB':>10}"
        )
        for (kind, label), r in results.items():
            rate = r["mails"] / r["seconds"]
            print(
                f"{kind + ' ' + label:<22}{r['mails']:>8}{r.get('rows', 0):>8}"
                f"{r['seconds']:>9.1f}{rate:>9.0f}{base_rate / rate:>8.2f}{r['rss']:>10.0f}"
            )
        for kind in ("baseline", *urls):
            full, fifth = results[(kind, "full")], results[(kind, "fifth")]
            print(f"memory {kind}: peak full / peak fifth = {full['rss'] / fifth['rss']:.2f}")
        for backend in urls:
            r = results[(backend, "full")]
            print(
                f"{backend}: {r['matched']} mails matched, {r['rows']} rows, "
                f"{r['with_region']} with region, aggregated={r['aggregated']}"
            )


if __name__ == "__main__":
    main()
