"""Fixtures of the fault suite; every test here carries the `faults` marker and the
session ends with the table of scenarios (expected rows, stored, lost, duplicated, peak
request rate, exit code)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.faultkit import REPORT, Procs, report_table

HERE = Path(__file__).resolve().parent
PG_BIN = Path(os.environ.get("WN_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
SEED = int(os.environ.get("WN_FAULTS_SEED") or random.SystemRandom().randrange(1, 2**31))
"""Seed of every random choice (kill moments); set WN_FAULTS_SEED to replay a run."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)


def pytest_report_header() -> str:
    return f"fault suite seed: WN_FAULTS_SEED={SEED}"


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's reporter
    if not REPORT:
        return
    terminalreporter.section("fault suite")
    terminalreporter.write_line(f"seed: WN_FAULTS_SEED={SEED}")
    for line in report_table():
        terminalreporter.write_line(line)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A random source seeded from the session seed and the test's id (replayable)."""
    seed = SEED ^ zlib.crc32(request.node.nodeid.encode())
    print(f"seed {SEED} (test {seed}); replay with WN_FAULTS_SEED={SEED}")
    return random.Random(seed)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Starts `wn-persist` processes; kills every one of them when the test ends."""
    started = Procs(tmp_path / "procs")
    try:
        yield started
    finally:
        started.kill_all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL 15 cluster in a temp dir, run as the `postgres` OS user
    (when the tests run as root), on a free port, trust auth."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.logfile = root / "server.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir()
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start"
        )
        assert done.returncode == 0, done.stderr + done.stdout

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    """A started throwaway cluster; stopped and deleted afterwards, whatever happened.
    (Its own temp dir: pytest's are private to root, the server runs as `postgres`.)"""
    assert (PG_BIN / "initdb").is_file(), f"PostgreSQL 15 server binaries missing in {PG_BIN}"
    root = Path(tempfile.mkdtemp(prefix="wn-faults-pg-"))
    os.chmod(root, 0o755)
    cluster = Cluster(root / "c")
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.data.exists():
            cluster.stop()
            deadline = time.monotonic() + 10
            while cluster.running() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)
