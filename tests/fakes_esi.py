"""Local fake ESI, zKillboard history and Fuzzwork SDE servers for tests (127.0.0.1 only).

They serve the real data in ../shared/data: systems, constellations and regions from the
SDE CSV files, ship types from ships.json and the EVE-KILL SDE subset, the real killmails
by id and hash, and zKillboard history files built from the real mails' days. The corpus
carries no character, corporation or alliance names, so those are answered as
"Character <id>" etc. (ESI's behaviour, synthetic names).

ESI's contract is enforced: killmail routes (`/killmails/{id}/{hash}/`) belong to the
rate-limit group `killmail`, a floating-window token bucket (3,600 tokens per 15 minutes
unless a test sets a smaller one with `rate_limit()`; a 2xx costs 2 tokens, a 4xx 5) whose
answers carry `X-Ratelimit-Group/-Limit/-Remaining/-Used` and which answers 429 with
`Retry-After` when the bucket cannot pay for the answer; other routes carry the error-limit
headers instead. EVE Ref's daily archives are served at
`/killmails/YYYY/killmails-YYYY-MM-DD.tar.bz2` (one ESI JSON per member) and Fuzzwork's
static data in both layouts (`/dump/latest/csv/<table>.csv`, UTF-8 with a BOM and quoted
fields, and `/dump/latest/<table>.csv.bz2`; `sde_layouts` picks which exist).

Market prices (`GET /markets/prices/`) are an array of `{type_id, average_price?,
adjusted_price?}` over every type of the real mails, with made-up prices
(`FakeServer.market_prices`; some types lack `average_price`, as on ESI).

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
import math
import re
import tarfile
import threading
import time
from collections import defaultdict, deque
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
        self.traded_types: set[int] = set()
        """Every hull and item type of the real mails (the market prices' types)."""
        with (data_dir / "killmails" / "real_killmails.jsonl").open() as fh:
            for line in fh:
                envelope = json.loads(line)
                body = envelope["esi"]
                self.traded_types.add(int(body["victim"]["ship_type_id"]))
                self.traded_types.update(_item_types(body["victim"].get("items") or []))
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

    def market_prices(self) -> list[dict[str, Any]]:
        """ESI's `/markets/prices/` answer for the types we know: made-up prices with two
        decimals; every 13th type has no `average_price` (ESI leaves it out for types
        that did not trade), and a few have only that one field."""
        out: list[dict[str, Any]] = []
        for type_id in sorted(self.traded_types | set(self.types)):
            entry: dict[str, Any] = {"type_id": type_id}
            if type_id % 13:
                entry["average_price"] = round((type_id * 7919 % 1_000_003) * 13.37 + 0.01, 2)
            if type_id % 17:
                entry["adjusted_price"] = round((type_id * 104_729 % 999_983) * 11.11, 2)
            out.append(entry)
        return out

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


def _item_types(items: list[dict[str, Any]]) -> set[int]:
    found: set[int] = set()
    for item in items:
        found.add(int(item["item_type_id"]))
        found |= _item_types(item.get("items") or [])
    return found


KILLMAIL_ROUTE = re.compile(r"/killmails/(\d+)/(\w+)/")
EVEREF_ARCHIVE = re.compile(r"/killmails/(\d{4})/killmails-(\d{4})-(\d{2})-(\d{2})\.tar\.bz2")
COSTS = {2: 2, 3: 1, 4: 5}
"""Tokens an answer costs, by the first digit of its status (5xx and 429 cost none)."""


class TokenBucket:
    """ESI's floating-window bucket: tokens spent come back `window` seconds later."""

    def __init__(self, group: str, limit: int, window: float, shown: str) -> None:
        self.group = group
        self.limit = limit
        self.window = window
        self.shown = shown
        """`X-Ratelimit-Limit` as ESI writes it (`3600/15m`)."""
        self.spent: deque[tuple[float, int]] = deque()

    def remaining(self, now: float) -> int:
        while self.spent and self.spent[0][0] <= now - self.window:
            self.spent.popleft()
        return self.limit - sum(cost for _, cost in self.spent)

    def retry_after(self, now: float, cost: int) -> int:
        """Whole seconds until `cost` tokens are back."""
        missing = cost - self.remaining(now)
        for at, spent in self.spent:
            missing -= spent
            if missing <= 0:
                return max(1, math.ceil(at + self.window - now))
        return max(1, math.ceil(self.window))


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: FakeData) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data
        self.killmails = dict(data.killmails)
        """(killmail_id, hash) -> body that ESI knows (tests may add more)."""
        self.history = {day: dict(index) for day, index in data.history.items()}
        """YYYYMMDD -> {killmail_id: hash}, zKillboard's day files."""
        self.archives: dict[str, list[tuple[int, str]]] = {}
        """YYYY-MM-DD -> the (id, hash) whose bodies EVE Ref's archive of that day holds;
        a day not listed holds every mail of the day's history."""
        self.archive_missing: set[str] = set()
        """Days EVE Ref has no archive for (404)."""
        self._archive_cache: dict[str, bytes] = {}
        self.sde_layouts = ("csv", "bz2")
        """Which static-data layouts exist: `csv` (new) and/or `bz2` (old)."""
        self.bucket = TokenBucket("killmail", 3600, 900.0, "3600/15m")
        self.answered: list[tuple[str, int]] = []
        """(path, status) of every answer, in order."""
        self.lock = threading.Lock()
        self.scripts: list[tuple[re.Pattern[str], list[tuple[int, dict[str, str]]]]] = []
        self.down = False
        self.requests: list[tuple[str, str, Any]] = []
        self.received: list[tuple[str, str, dict[str, str]]] = []
        """(method, path, headers with lower-case names) of every request, in order."""
        self.market_prices: list[dict[str, Any]] = data.market_prices()
        """ESI's `/markets/prices/` array (tests may change it)."""
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

    def rate_limit(self, limit: int, window: float, shown: str) -> None:
        """A smaller killmail bucket (tests): `limit` tokens per `window` seconds, written
        `shown` in `X-Ratelimit-Limit` (ESI's format, e.g. `300/2s`)."""
        with self.lock:
            self.bucket = TokenBucket("killmail", limit, window, shown)

    def statuses(self, status: int) -> list[str]:
        """Paths answered with `status`."""
        with self.lock:
            return [path for path, code in self.answered if code == status]

    def archive(self, day: str) -> bytes | None:
        """EVE Ref's `.tar.bz2` of a day (`YYYY-MM-DD`), built once from its mails."""
        if day in self.archive_missing:
            return None
        with self.lock:
            cached = self._archive_cache.get(day)
        if cached is not None:
            return cached
        pairs = self.archives.get(day)
        if pairs is None:
            index = self.history.get(day.replace("-", ""), {})
            pairs = [(int(k), v) for k, v in index.items()]
        if not pairs:
            return None
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:bz2", compresslevel=1) as tar:
            for killmail_id, hash_ in sorted(pairs):
                raw = json.dumps(self.killmails[(killmail_id, hash_)]).encode()
                member = tarfile.TarInfo(f"killmails/{killmail_id}.json")
                member.size = len(raw)
                tar.addfile(member, io.BytesIO(raw))
        data = out.getvalue()
        with self.lock:
            self._archive_cache[day] = data
        return data

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

    def _send(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        esi: bool = True,
        content_type: str = "application/json",
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        server = self.server
        path = self.path.split("?", 1)[0]
        sent: dict[str, str] = {}
        with server.lock:
            server.answered.append((path, status))
            if esi and KILLMAIL_ROUTE.fullmatch(path):
                # A rate-limit group's route: its headers, not the error limit's.
                bucket = server.bucket
                now = time.monotonic()
                cost = 0 if status == 429 else COSTS.get(status // 100, 0)
                if cost:
                    bucket.spent.append((now, cost))
                sent = {
                    "X-Ratelimit-Group": bucket.group,
                    "X-Ratelimit-Limit": bucket.shown,
                    "X-Ratelimit-Remaining": str(max(0, bucket.remaining(now))),
                    "X-Ratelimit-Used": str(cost),
                }
            elif esi:
                if status >= 400 and status not in (404,):
                    server.error_remain = max(0, server.error_remain - 1)
                sent = {
                    "X-ESI-Error-Limit-Remain": str(server.error_remain),
                    "X-ESI-Error-Limit-Reset": str(server.error_reset),
                }
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        sent.update(headers or {})
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
        if method == "GET" and path == "/status/":
            self._send(
                200,
                {
                    "players": 23456,
                    "server_version": "2961651",
                    "start_time": "2026-01-01T11:00:00Z",
                },
            )
            return
        if method == "GET" and path == "/markets/prices/":
            # ESI caches the route for an hour: the same array until it expires.
            self._send(200, self.server.market_prices, {"Cache-Control": "public, max-age=3600"})
            return
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
        match = KILLMAIL_ROUTE.fullmatch(path)
        if method == "GET" and match:
            server = self.server
            mail = server.killmails.get((int(match.group(1)), match.group(2)))
            status = 200 if mail is not None else 422
            with server.lock:
                now = time.monotonic()
                cost = COSTS[status // 100]
                short = server.bucket.remaining(now) < cost
                wait = server.bucket.retry_after(now, cost) if short else 0
            if short:
                self._send(429, {"error": "rate limited"}, {"Retry-After": str(wait)})
            elif mail is None:
                self._send(422, {"error": "Invalid killmail_id and/or killmail_hash"})
            else:
                self._send(200, mail)
            return
        match = re.fullmatch(r"/history/(\d{8})\.json", path)
        if method == "GET" and match:
            day = self.server.history.get(match.group(1))
            self._send(200, day if day is not None else {}, esi=False)
            return
        match = EVEREF_ARCHIVE.fullmatch(path)
        if method == "GET" and match:
            archive = self.server.archive(f"{match.group(2)}-{match.group(3)}-{match.group(4)}")
            if archive is None or match.group(1) != match.group(2):
                self._send(404, b"<html>not found</html>", esi=False, content_type="text/html")
            else:
                self._send(200, archive, esi=False, content_type="application/x-bzip2")
            return
        table = self._sde_table(path)
        if method == "GET" and table is not None:
            layout, raw = table
            if layout == "csv":
                self._send(200, raw, esi=False, content_type="text/csv")
            else:
                self._send(200, bz2.compress(raw), esi=False, content_type="application/x-bzip2")
            return
        self._send(404, {"error": "not found"})

    def _sde_table(self, path: str) -> tuple[str, bytes] | None:
        """Fuzzwork's dump: `csv/<table>.csv` (UTF-8 with a BOM, every field quoted) in the
        new layout, `<table>.csv.bz2` in the old one; None when not served."""
        data = self.server.data
        for layout, pattern in (
            ("csv", r"/dump/latest/csv/(\w+\.csv)"),
            ("bz2", r"/dump/latest/(\w+\.csv)\.bz2"),
        ):
            match = re.fullmatch(pattern, path)
            if match is None or layout not in self.server.sde_layouts:
                continue
            name = match.group(1)
            if name == "invTypes.csv":
                plain = data.inv_types_csv()
            elif (data.universe_dir / name).is_file():
                plain = (data.universe_dir / name).read_bytes()
            else:
                return None
            return layout, (quoted_with_bom(plain) if layout == "csv" else plain)
        return None


def quoted_with_bom(plain: bytes) -> bytes:
    """A CSV file rewritten as Fuzzwork's new layout writes it: a UTF-8 BOM, every field
    quoted."""
    rows = list(csv.reader(io.StringIO(plain.decode("utf-8"))))
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


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
