"""How much of the feed's time budget the standalone host spends per mail.

The R2Z2 feed admits at most 20 requests/s, so the host has 50 ms per mail. This measures,
on the 529 real killmails, what `Host.handle()` costs (tracked-id matching, kill time,
handing the mail to the plugins through pluggy) next to a baseline measured in the same
run: decoding the mail's JSON, which every fetch does anyway.

    .venv/bin/python bench/bench_host.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import real_envelopes, timed  # noqa: E402

from wn_persist_plugin.hookspecs import hookimpl  # noqa: E402
from wn_persist_plugin.host.runner import Host, make_plugin_manager  # noqa: E402
from wn_persist_plugin.settings import load_settings  # noqa: E402


class NoOp:
    @hookimpl
    def on_kill_processed(self, killmail):
        return None


def main() -> None:
    envelopes = real_envelopes()
    bodies = [json.dumps(e) for e in envelopes]
    ids = sorted(
        {
            a["character_id"]
            for e in envelopes
            for a in e["esi"]["attackers"]
            if a.get("character_id")
        }
    )
    tracked = ",".join(str(i) for i in ids[:500])
    settings = load_settings(
        environ={"DATABASE_URL": "sqlite:///:memory:", "TRACKED_CHARACTER_IDS": tracked},
        dotenv=Path("/nonexistent/.env"),
    )
    host = Host(settings, plugin_manager=make_plugin_manager([NoOp()], entry_points=False))

    def decode() -> None:
        for body in bodies:
            json.loads(body)

    def handle() -> None:
        for n, envelope in enumerate(envelopes):
            host.handle(n, envelope)

    baseline = timed(decode, repeat=5)
    cost = timed(handle, repeat=5)
    per_mail_ms = cost / len(envelopes) * 1000
    print(f"mails: {len(envelopes)}, tracked ids: 500")
    print(f"baseline json.loads: {baseline / len(envelopes) * 1000:.3f} ms/mail")
    print(
        f"Host.handle (no-op plugin): {per_mail_ms:.3f} ms/mail "
        f"= {cost / baseline:.2f}x the JSON decode"
    )
    print(f"share of the 50 ms per-mail budget at 20 req/s: {per_mail_ms / 50 * 100:.2f} %")
    real_plugin(envelopes, tracked, baseline)


def real_plugin(envelopes: list, tracked: str, baseline: float) -> None:
    """The same with wn-persist's own plugin on a throwaway SQLite: the hand-over (queue)
    and the writer's time to write everything (flush)."""
    import tempfile
    import time

    from wn_persist_plugin.plugin import PersistencePlugin

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        settings = load_settings(
            environ={"DATABASE_URL": url, "TRACKED_CHARACTER_IDS": tracked},
            dotenv=Path("/nonexistent/.env"),
        )
        plugin = PersistencePlugin(environ={}, dotenv=Path("/nonexistent/.env"))
        pm = make_plugin_manager([plugin], entry_points=False)
        host = Host(settings, plugin_manager=pm)
        pm.hook.on_startup(config=host.plugin_config())
        pm.hook.on_tracked_characters_updated(
            characters=[{"character_id": int(i)} for i in tracked.split(",")]
        )
        plugin.flush_pending(60)
        start = time.perf_counter()
        for n, envelope in enumerate(envelopes):
            host.handle(n, envelope)
        handed = time.perf_counter() - start
        plugin.flush_pending(600)
        written = time.perf_counter() - start
        stats = plugin.pipeline_stats()
        pm.hook.on_shutdown()
    print(
        f"Host.handle (wn-persist plugin, SQLite): {handed / len(envelopes) * 1000:.3f} ms/mail "
        f"= {handed / baseline:.2f}x the JSON decode; all {stats.rows_written} rows written "
        f"after {written:.2f} s = {written / len(envelopes) * 1000:.2f} ms/mail "
        f"({written / baseline:.0f}x the decode)"
    )


if __name__ == "__main__":
    main()
