"""Local fake ESI, zKillboard history and Fuzzwork SDE servers for tests (127.0.0.1 only).

They serve the real data in ../shared/data: systems, constellations and regions from the
SDE CSV files, ship types from ships.json and the EVE-KILL SDE subset, the real killmails
by id and hash, and zKillboard history files built from the real mails' days. The corpus
carries no character, corporation or alliance names, so those are answered as
"Character <id>" etc. (ESI's behaviour, synthetic names).

Faults are scripted per path pattern: `server.script(r"^/universe/names/", [(420, {...})])`
answers the next matching requests with those statuses; `server.down = True` answers 503
everywhere. Every answer carries ESI's error-limit headers. Every request is recorded
(`requests`: method, path, body; `received`: method, path, headers).
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NOT_FOUND_NAMES = {"error": "Ensure all IDs are valid before resolving."}


class FakeData:
    """The real data, indexed the way the fake endpoints answer."""

    def __init__(self, data_dir: Path) -> None:
        universe = data_dir / "universe"
        self.universe_dir = universe
        self.regions: dict[int, dict[str, Any]] = {}
        self.constellations: dict[int, dict[str, Any]] = {}
        self.systems: dict[int, dict[str, Any]] = {}
        with (universe / "mapRegions.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                self.regions[int(row["regionID"])] = {
                    "region_id": int(row["regionID"]),
                    "name": row["regionName"],
                    "constellations": [],
                }
        with (universe / "mapConstellations.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                cid = int(row["constellationID"])
                self.constellations[cid] = {
                    "constellation_id": cid,
                    "name": row["constellationName"],
                    "region_id": int(row["regionID"]),
                    "systems": [],
                }
        with (universe / "mapSolarSystems.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                sid = int(row["solarSystemID"])
                self.systems[sid] = {
                    "system_id": sid,
                    "name": row["solarSystemName"],
                    "constellation_id": int(row["constellationID"]),
                    "security_status": float(row["security"]),
                }
        self.types: dict[int, str] = {}
        self.type_groups: dict[int, int] = {}
        subset = json.loads((universe / "evekill-shrike-sde-subset.json").read_text())
        for type_id, entry in subset["types"].items():
            self.types[int(type_id)] = entry["name"]
            self.type_groups[int(type_id)] = int(entry["group_id"])
        for ship in json.loads((universe / "ships.json").read_text())["ships"]:
            self.types[int(ship["typeID"])] = ship["name"]
            self.type_groups[int(ship["typeID"])] = int(ship["groupID"])
        self.killmails: dict[tuple[int, str], dict[str, Any]] = {}
        self.history: dict[str, dict[str, str]] = defaultdict(dict)
        self.entities: dict[int, str] = {}
        with (data_dir / "killmails" / "real_killmails.jsonl").open() as fh:
            for line in fh:
                envelope = json.loads(line)
                body = envelope["esi"]
                key = (int(envelope["killmail_id"]), str(envelope["hash"]))
                self.killmails[key] = body
                day = body["killmail_time"][:10].replace("-", "").replace(".", "")
                self.history[day][str(key[0])] = key[1]
                for who in [body["victim"], *body["attackers"]]:
                    for field, category in (
                        ("character_id", "character"),
                        ("corporation_id", "corporation"),
                        ("alliance_id", "alliance"),
                    ):
                        if who.get(field) is not None:
                            self.entities[int(who[field])] = category

    def inv_types_csv(self) -> bytes:
        """invTypes.csv in Fuzzwork's layout, from the real type names and groups we have
        (the full table is not in shared/data)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "typeID",
                "groupID",
                "typeName",
                "description",
                "mass",
                "volume",
                "capacity",
                "portionSize",
                "raceID",
                "basePrice",
                "published",
                "marketGroupID",
                "iconID",
                "soundID",
                "graphicID",
            ]
        )
        for type_id in sorted(self.types):
            writer.writerow(
                [
                    type_id,
                    self.type_groups[type_id],
                    self.types[type_id],
                    "A description, with a comma\nand a line break",
                    0,
                    0,
                    0,
                    1,
                    "None",
                    0,
                    1,
                    "None",
                    "None",
                    "None",
                    "None",
                ]
            )
        return out.getvalue().encode()

    def name(self, entity_id: int) -> dict[str, Any] | None:
        if entity_id in self.systems:
            return {
                "id": entity_id,
                "name": self.systems[entity_id]["name"],
                "category": "solar_system",
            }
        if entity_id in self.regions:
            return {"id": entity_id, "name": self.regions[entity_id]["name"], "category": "region"}
        if entity_id in self.types:
            return {"id": entity_id, "name": self.types[entity_id], "category": "inventory_type"}
        category = self.entities.get(entity_id)
        if category:
            return {
                "id": entity_id,
                "name": f"{category.title()} {entity_id}",
                "category": category,
            }
        return None


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: FakeData) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data
        self.lock = threading.Lock()
        self.scripts: list[tuple[re.Pattern[str], list[tuple[int, dict[str, str]]]]] = []
        self.down = False
        self.requests: list[tuple[str, str, Any]] = []
        self.received: list[tuple[str, str, dict[str, str]]] = []
        """(method, path, headers with lower-case names) of every request, in order."""
        self.error_remain = 100
        self.error_reset = 1
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def script(self, pattern: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        """Answer the next requests whose path matches `pattern` with these statuses."""
        with self.lock:
            self.scripts.append((re.compile(pattern), list(answers)))

    def scripted(self, path: str) -> tuple[int, dict[str, str]] | None:
        with self.lock:
            for pattern, answers in self.scripts:
                if answers and pattern.search(path):
                    return answers.pop(0)
        return None

    def user_agents(self) -> list[str | None]:
        """The User-Agent of every request received, in order."""
        with self.lock:
            return [headers.get("user-agent") for _, _, headers in self.received]

    def asked(self, prefix: str) -> list[tuple[str, str, Any]]:
        with self.lock:
            return [r for r in self.requests if r[1].startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        server = self.server
        with server.lock:
            if status >= 400 and status not in (404,):
                server.error_remain = max(0, server.error_remain - 1)
            remain = server.error_remain
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        sent = {
            "X-ESI-Error-Limit-Remain": str(remain),
            "X-ESI-Error-Limit-Reset": str(server.error_reset),
            **(headers or {}),
        }
        for key, value in sent.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _answer(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body: Any = None
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                body = None
        with self.server.lock:
            self.server.requests.append((method, path, body))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.server.received.append((method, path, headers))
        if self.server.down:
            self._send(503, {"error": "service unavailable"})
            return
        scripted = self.server.scripted(path)
        if scripted is not None:
            status, headers = scripted
            self._send(status, {"error": f"scripted {status}"}, headers)
            return
        self._route(method, path, body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._answer("POST")

    def _route(self, method: str, path: str, body: Any) -> None:
        data = self.server.data
        match = re.fullmatch(r"/universe/(systems|constellations|regions)/(\d+)/", path)
        if method == "GET" and match:
            table = {
                "systems": data.systems,
                "constellations": data.constellations,
                "regions": data.regions,
            }[match.group(1)]
            entry = table.get(int(match.group(2)))
            self._send(200, entry) if entry else self._send(404, {"error": "not found"})
            return
        if method == "POST" and path == "/universe/names/":
            if not isinstance(body, list) or not body or len(body) > 1000:
                self._send(400, {"error": "between 1 and 1000 ids"})
                return
            answers = [data.name(int(i)) for i in body]
            if any(a is None for a in answers):
                self._send(404, NOT_FOUND_NAMES)
            else:
                self._send(200, answers)
            return
        match = re.fullmatch(r"/killmails/(\d+)/(\w+)/", path)
        if method == "GET" and match:
            mail = data.killmails.get((int(match.group(1)), match.group(2)))
            if mail is None:
                self._send(422, {"error": "Invalid killmail_id and/or killmail_hash"})
            else:
                self._send(200, mail)
            return
        match = re.fullmatch(r"/history/(\d{8})\.json", path)
        if method == "GET" and match:
            day = data.history.get(match.group(1))
            self._send(200, day if day is not None else {})
            return
        match = re.fullmatch(r"/dump/latest/(\w+\.csv)\.bz2", path)
        if method == "GET" and match and match.group(1) == "invTypes.csv":
            self._send(200, bz2.compress(data.inv_types_csv()))
            return
        if method == "GET" and match and (data.universe_dir / match.group(1)).is_file():
            self._send(200, bz2.compress((data.universe_dir / match.group(1)).read_bytes()))
            return
        self._send(404, {"error": "not found"})


# -- fixtures (import them into a test module) ----------------------------------------------

import pytest  # noqa: E402

from wn_persist_plugin.sources.esi import EsiClient, EsiSettings  # noqa: E402


@pytest.fixture(scope="session")
def fake_data(real_data_dir: Path) -> FakeData:
    return FakeData(real_data_dir)


@pytest.fixture
def fake_server(fake_data: FakeData):
    server = FakeServer(fake_data).start()
    yield server
    server.stop()


class SleepRecorder:
    """Stands in for time.sleep: records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def esi_client(fake_server: FakeServer, sleeps: SleepRecorder) -> EsiClient:
    settings = EsiSettings(base_url=fake_server.url, timeout=5, max_retries=3, max_wait=30)
    return EsiClient(settings, sleep=sleeps)
