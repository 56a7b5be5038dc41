"""The example host finds the plugin through its entry point and stores the mails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_pipeline import expected_keys, sample_characters, stored_keys

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "host_notifier.py"


def test_example_host_replays_the_corpus(db, db_url, real_data_dir, real_envelopes, tmp_path):
    tracked = sample_characters(real_envelopes, 300, seed=3)
    track_file = tmp_path / "tracked.json"
    track_file.write_text(
        json.dumps(
            {"data": [{"tracked": True, "character": {"eve_id": str(c)}} for c in tracked[100:]]}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "POSTGRES_"))}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--killmails",
            str(real_data_dir / "killmails" / "real_killmails.jsonl"),
            "--track",
            ",".join(str(c) for c in tracked[:100]),
            "--track-file",
            str(track_file),
            "--database-url",
            db_url,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["plugin"] == "wn_persist"
    assert stats["seen"] == len(real_envelopes) and stats["lost"] == 0
    assert stored_keys() == expected_keys(real_envelopes, set(tracked))
