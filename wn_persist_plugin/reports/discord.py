"""Posting to a Discord webhook: one multipart request (`payload_json` + `files[n]`)
through the package's one HTTP session factory (our User-Agent, timeouts).

Discord answers an exceeded rate limit with 429, a JSON body whose `retry_after` is in
seconds, and a `Retry-After` header; we wait the longer of the two and try again, unless
that is longer than `max_wait` (then `DiscordUnavailable`: the caller tries again later).
5xx and transport failures are retried with backoff a few times. Other 4xx answers raise
`DiscordError` at once.

The webhook URL holds its token: it appears in no message, no log line (urllib3's debug
line names the request path: a filter masks it) and no repr.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from ..errors import DiscordError, DiscordUnavailable
from ..sources.http import (
    NO_RETRIES,
    Backoff,
    make_session,
    retry_after_seconds,
    status_cause,
    transport_cause,
)

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WAIT = 60.0
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF = Backoff(first=1.0, cap=30.0)
MASK = "***"
_WEBHOOK_PATH = re.compile(r"(/webhooks/\d+/)[^/?#\s\"']+")

_known: set[str] = set()
_known_lock = threading.Lock()


def mask_webhook(text: str) -> str:
    """`text` with every webhook token (in a `/webhooks/<id>/<token>` path, or any URL a
    client here was made with) replaced by `***`."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    return _WEBHOOK_PATH.sub(rf"\g<1>{MASK}", text)


class _MaskWebhooks(logging.Filter):
    """Masks webhook tokens in urllib3's log records (its debug line names the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_webhook(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_MaskWebhooks())


class DiscordWebhook:
    """One webhook. `sleep` is the wait function (tests pass a recorder)."""

    def __init__(
        self,
        url: str,
        *,
        contact: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        with _known_lock:
            _known.add(url)
            token = url.rstrip("/").rsplit("/", 1)[-1]
            if len(token) >= 8:
                _known.add(token)
        self.timeout = timeout
        self.max_wait = max_wait
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        self.waited: list[float] = []
        """Every rate-limit or backoff wait, in seconds (for logs and tests)."""
        self._session = make_session(contact, timeout=timeout, retries=NO_RETRIES, accept=None)

    def __repr__(self) -> str:
        return f"DiscordWebhook(url='{MASK}')"

    def close(self) -> None:
        self._session.close()

    def post(
        self, payload: dict[str, Any], files: Sequence[tuple[str, bytes, str]] = ()
    ) -> dict[str, Any]:
        """Execute the webhook with `payload` as `payload_json` and `files` (name, bytes,
        content type) as `files[0]`, `files[1]`, ...; returns Discord's message object
        (`?wait=true`). Raises `DiscordUnavailable` or `DiscordError`."""
        body = json.dumps(payload, separators=(",", ":"))
        for attempt in range(self.attempts):
            parts = {
                f"files[{i}]": (name, data, kind) for i, (name, data, kind) in enumerate(files)
            }
            try:
                response = self._session.post(
                    self._url,
                    params={"wait": "true"},
                    data={"payload_json": body},
                    files=parts or None,
                )
            except requests.RequestException as exc:
                cause = mask_webhook(transport_cause(exc, self.timeout))
                self._again(attempt, self.backoff.delay(attempt), f"Discord webhook: {cause}")
                continue
            if response.ok:
                try:
                    found = response.json()
                except ValueError:
                    found = {}
                return found if isinstance(found, dict) else {}
            if response.status_code == 429:
                wait = _rate_limit_wait(response)
                if wait > self.max_wait:
                    raise DiscordUnavailable(
                        f"Discord webhook: rate limited for {wait:g} s (longer than we wait)", 429
                    )
                self._again(attempt, wait, "Discord webhook: rate limited (HTTP 429)", 429)
                continue
            cause = _status_cause(response)
            if response.status_code >= 500:
                self._again(attempt, self.backoff.delay(attempt), f"Discord webhook: {cause}",
                            response.status_code)  # fmt: skip
                continue
            raise DiscordError(f"Discord webhook: {cause}", response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover - _again raises on the last

    def _again(self, attempt: int, wait: float, message: str, status: int | None = None) -> None:
        """Wait before the next attempt, or raise `DiscordUnavailable` after the last."""
        if attempt + 1 >= self.attempts:
            raise DiscordUnavailable(f"{message}; gave up after {self.attempts} attempts", status)
        log.info("%s; trying again in %.1f s", message, wait)
        self.waited.append(wait)
        self.sleep(wait)


def _rate_limit_wait(response: requests.Response) -> float:
    """Seconds Discord asks us to wait: the larger of the body's `retry_after` and the
    `Retry-After` header (1 s when neither is readable)."""
    header = retry_after_seconds(response.headers.get("Retry-After"), default=0.0, cap=1e9)
    body = 0.0
    try:
        found = response.json()
        if isinstance(found, dict) and isinstance(found.get("retry_after"), int | float):
            body = float(found["retry_after"])
    except ValueError:
        pass
    wait = max(header, body)
    return wait if wait > 0 else 1.0


def _status_cause(response: requests.Response) -> str:
    return mask_webhook(status_cause(response, key="message"))
