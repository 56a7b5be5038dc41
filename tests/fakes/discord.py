"""A fake Discord webhook: a real HTTP server on 127.0.0.1 that takes
`POST /api/webhooks/<id>/<token>` as Discord does (multipart: `payload_json` + `files[n]`),
checks the body and answers 400 like Discord when it is wrong, records every post (its
headers, payload and files) and can answer 429 with `retry_after` or 5xx first."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any

from .base import LocalServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEBHOOK_ID = "112233445566778899"
WEBHOOK_TOKEN = "hook-token-SECRET-abcdefghijklmnop"


@dataclass
class Post:
    headers: dict[str, str]
    status: int
    payload: dict[str, Any] | None = None
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    """Field name -> (filename, content type, bytes)."""
    query: str = ""


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, str, bytes]]:
    """Form field name -> (filename, content type, bytes)."""
    message = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not multipart")
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a part without a name")
        data = part.get_payload(decode=True) or b""
        parts[str(name)] = (part.get_filename(), part.get_content_type(), data)
    return parts


def check(parts: dict[str, tuple[str | None, str, bytes]]) -> tuple[dict[str, Any], list[str]]:
    """Discord's rules for what we send: valid `payload_json`, embeds within the limits,
    each `attachments[i]` naming a `files[i]` part, files present."""
    problems: list[str] = []
    if "payload_json" not in parts:
        return {}, ["payload_json missing"]
    try:
        payload = json.loads(parts["payload_json"][2])
    except ValueError:
        return {}, ["payload_json is not JSON"]
    embeds = payload.get("embeds") or []
    if not embeds and not payload.get("content"):
        problems.append("neither content nor embeds")
    for embed in embeds:
        if len(embed.get("title", "")) > 256:
            problems.append("embed title over 256")
        if len(embed.get("fields", [])) > 25:
            problems.append("over 25 fields")
        for f in embed.get("fields", []):
            if not f.get("name") or not f.get("value"):
                problems.append(f"empty field {f!r}")
            if len(f["name"]) > 256 or len(f["value"]) > 1024:
                problems.append(f"field too long {f['name']!r}")
    for attachment in payload.get("attachments", []):
        key = f"files[{attachment['id']}]"
        if key not in parts:
            problems.append(f"{key} missing")
        elif parts[key][0] != attachment.get("filename"):
            problems.append(f"{key} filename differs")
    return payload, problems


class FakeDiscord(LocalServer):
    METHODS = ("POST",)

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[Post] = []
        self.answers: deque[tuple[int, dict[str, Any] | None, dict[str, str]]] = deque()
        self.delay = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.root}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    def rate_limit(self, retry_after: float, header: str | None = None) -> None:
        """Answer the next post 429 with Discord's body (and `Retry-After: header`)."""
        body = {"message": "You are being rate limited.", "retry_after": retry_after,
                "global": False}  # fmt: skip
        headers = {"Retry-After": header} if header is not None else {}
        with self.lock:
            self.answers.append((429, body, headers))

    def fail(self, status: int, times: int = 1) -> None:
        with self.lock:
            for _ in range(times):
                self.answers.append((status, {"message": "Internal error", "code": 0}, {}))

    def accepted(self) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if p.status == 200]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(headers.get("content-length", "0"))
        raw = handler.rfile.read(length)
        post = Post(headers, 0, query=query)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            scripted = self.answers.popleft() if self.answers else None
        extra: dict[str, str] = {}
        if path != f"/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}":
            status, body = 404, {"message": "Unknown Webhook", "code": 10015}
        elif scripted is not None:
            status, body, extra = scripted
        else:
            try:
                parts = parse_multipart(headers.get("content-type", ""), raw)
                payload, problems = check(parts)
            except ValueError as exc:
                payload, problems, parts = {}, [str(exc)], {}
            post.payload = payload
            post.files = {
                k: (v[0] or "", v[1], v[2]) for k, v in parts.items() if k != "payload_json"
            }
            if problems:
                status, body = 400, {"message": "; ".join(problems), "code": 50035}
            else:
                status, body = 200, {"id": str(1000 + len(self.posts)), "embeds": payload["embeds"]}
        post.status = status
        with self.lock:
            self.posts.append(post)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
