"""A host that never calls `on_shutdown`: the plugin writes its queue at interpreter exit,
and when it cannot (database unreachable), says how many mails were lost, with their ids."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from wn_persist_plugin.db.models import Involvement

HOST = textwrap.dedent(
    """
    import json, logging, sys
    from wn_persist_plugin.plugin import PersistencePlugin

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url, mails_path, tracked = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    plugin = PersistencePlugin(environ={})
    plugin.on_startup(config={
        "ENABLE_PERSISTENCE": "true",
        "DATABASE_URL": url,
        "PERSISTENCE_SHUTDOWN_TIMEOUT": "5",
        "PERSISTENCE_ESI_ENRICHMENT": "false",
    })
    plugin.on_tracked_characters_updated([{"character_id": c} for c in tracked])
    with open(mails_path) as fh:
        for line in fh:
            plugin.on_kill_processed(json.loads(line))
    # No on_shutdown: the interpreter exits with mails still queued.
    """
)


def run_host(tmp_path: Path, url: str, mails: list[dict], tracked: list[int]) -> str:
    mails_path = tmp_path / "mails.jsonl"
    mails_path.write_text("".join(json.dumps(m) + "\n" for m in mails))
    script = tmp_path / "host.py"
    script.write_text(HOST)
    done = subprocess.run(
        [sys.executable, str(script), url, str(mails_path), json.dumps(tracked)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def victims(mails: list[dict]) -> list[int]:
    return sorted({m["esi"]["victim"]["character_id"] for m in mails})


def test_queue_written_at_exit(db, db_url, tmp_path, real_envelopes):
    mails = [m for m in real_envelopes if m["esi"]["victim"].get("character_id")][:60]
    tracked = victims(mails)
    log = run_host(tmp_path, db_url, mails, tracked)
    assert "did not call on_shutdown" in log
    stored = Involvement.select().where(Involvement.character_role == "victim").count()
    assert stored == len({m["killmail_id"] for m in mails})


def test_unreachable_database_at_exit_names_the_lost_mails(tmp_path, real_envelopes):
    mails = [m for m in real_envelopes if m["esi"]["victim"].get("character_id")][:5]
    # A server that refuses connections: the plugin starts (and retries in the
    # background), the mails queue, and at exit nothing can be written.
    log = run_host(tmp_path, "postgresql://postgres@127.0.0.1:1/none", mails, victims(mails))
    lost_lines = [line for line in log.splitlines() if "not written" in line]
    assert lost_lines, log
    for mail in mails:
        assert str(mail["killmail_id"]) in lost_lines[-1]
