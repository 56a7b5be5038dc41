"""The real `wn-persist serve` on a free port over HTTP, stopped by SIGTERM; `health`
against it; `export` from the CLI; the refusal to listen publicly without a token."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from api_support import persist, track, tracked_of
from click.testing import CliRunner

from wn_persist_plugin.cli import main

SCRIPT = Path(sys.executable).with_name("wn-persist")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_and_stops_on_sigterm(db, db_url, real_envelopes, tmp_path):
    tracked = tracked_of(real_envelopes)
    track(tracked)
    persist(real_envelopes[:50], tracked)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "PERSISTENCE_HTTP_PORT": str(port)}
    proc = subprocess.Popen(
        [str(SCRIPT), "serve"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                live = urllib.request.urlopen(f"{base}/livez", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not answer"
                time.sleep(0.1)
        assert live.status == 200
        ready = json.loads(urllib.request.urlopen(f"{base}/readyz", timeout=5).read())
        assert ready["ready"] is True
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "wn_persist_table_rows" in metrics and "wn_persist_build_info" in metrics
        result = CliRunner().invoke(
            main, ["health", "--port", str(port)], env={"DATABASE_URL": db_url}
        )
        assert result.exit_code == 0, result.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    down = CliRunner().invoke(main, ["health", "--port", str(port)], env={"DATABASE_URL": db_url})
    assert down.exit_code == 1 and "not ready" in down.output
    assert len(down.output.strip().splitlines()) == 1


def test_public_bind_without_token_refuses(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        ["serve", "--host", "0.0.0.0"],
        env={"DATABASE_URL": db_url, "PERSISTENCE_API_TOKEN": ""},
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "PERSISTENCE_API_TOKEN" in lines[0]


def test_cli_export_matches_the_involvements(db, db_url, real_envelopes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracked = tracked_of(real_envelopes)
    track(tracked)
    persist(real_envelopes, tracked)
    count = db.execute_sql("SELECT COUNT(*) FROM killmails").fetchone()[0]
    runner = CliRunner()
    for fmt in ("csv", "json", "ndjson"):
        out = tmp_path / f"x.{fmt}"
        result = runner.invoke(
            main, ["export", "--format", fmt, "--out", str(out)], env={"DATABASE_URL": db_url}
        )
        assert result.exit_code == 0, result.output
        text = out.read_text()
        rows = (
            list(csv.DictReader(text.splitlines())) if fmt == "csv"
            else json.loads(text) if fmt == "json"
            else [json.loads(line) for line in text.splitlines()]
        )  # fmt: skip
        assert len(rows) == count, fmt
    bad = runner.invoke(
        main, ["export", "--from", "2026-02-01", "--to", "2026-01-01"], env={"DATABASE_URL": db_url}
    )
    assert bad.exit_code == 2 and "--from" in bad.output
