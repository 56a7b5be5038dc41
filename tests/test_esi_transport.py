"""Network failures other than refused connections and timeouts (a body cut off
mid-way) are retried like them, then reported as ESI unavailable; never raised raw."""

from __future__ import annotations

import socket
import threading

import pytest
from fakes_esi import SleepRecorder

from wn_persist_plugin.errors import EsiUnavailable
from wn_persist_plugin.sources.esi import EsiClient, EsiSettings

JITA = {"system_id": 30000142, "name": "Jita", "constellation_id": 20000020}
BODY = b'{"system_id": 30000142, "name": "Jita", "constellation_id": 20000020}'


class CuttingServer:
    """Answers the first `cut` requests with a 200 whose body stops half-way (the
    connection closes), then answers properly."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.requests = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests += 1
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
                ).encode()
                body = BODY[: len(BODY) // 2] if self.requests <= self.cut else BODY
                conn.sendall(head + body)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def cutting():
    servers: list[CuttingServer] = []

    def make(cut: int) -> CuttingServer:
        servers.append(CuttingServer(cut))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def test_a_body_cut_off_is_retried(cutting):
    server = cutting(cut=2)
    sleeps = SleepRecorder()
    client = EsiClient(EsiSettings(base_url=server.url, max_retries=3), sleep=sleeps)
    assert client.system(30000142) == JITA
    assert server.requests == 3 and sleeps.waits == [1.0, 2.0]


def test_bodies_cut_off_every_time_make_esi_unavailable(cutting):
    server = cutting(cut=100)
    sleeps = SleepRecorder()
    client = EsiClient(EsiSettings(base_url=server.url, max_retries=2), sleep=sleeps)
    with pytest.raises(EsiUnavailable, match="answer cut off mid-way"):
        client.system(30000142)
    assert server.requests == 3
