"""A fake R2Z2 feed: `/ephemeral/sequence.json` and `/ephemeral/{N}.json` serving real
killmails (R2Z2 envelopes) under consecutive sequence numbers.

The feed's contract: a sequence not published yet is 404 (clients wait and ask again);
`sequence.json` may lag the newest object (`lag`, up to ~50 on the real feed); a mail
zKillboard reprices is published again under a new sequence with `sequence_updated` and
its new zkb block (`republish`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import FakeServer


class FakeR2Z2(FakeServer):
    """Sequences `first .. first + len(envelopes) - 1`; of those, `first .. published` are
    served (later ones are 404 until `publish()`), and ones before `expired_before` are
    404 (expired). `sequence.json` reports `reported_latest` (default: `published` less
    `lag`)."""

    def __init__(
        self,
        envelopes: Sequence[dict[str, Any]],
        *,
        first: int = 90_000_000,
        published: int | None = None,
    ) -> None:
        super().__init__()
        self.first = first
        self.objects = {
            first + i: {**envelope, "sequence_id": first + i}
            for i, envelope in enumerate(envelopes)
        }
        self.last = first + len(envelopes) - 1
        self.published = self.last if published is None else published
        self.expired_before = first
        self.reported_latest: int | None = None
        self.lag = 0

    def republish(self, sequence: int, **zkb: Any) -> int:
        """Publish the mail at `sequence` again, repriced (zkb values updated), under the
        next sequence, with `sequence_updated`; returns the new sequence."""
        with self.lock:
            self.last += 1
            old = self.objects[sequence]
            self.objects[self.last] = {
                **old,
                "zkb": {**old.get("zkb", {}), **zkb},
                "sequence_id": self.last,
                "sequence_updated": self.last,
            }
            self.published = self.last
            return self.last

    def publish(self, up_to: int) -> None:
        with self.lock:
            self.published = min(up_to, self.last)

    def latest(self) -> int:
        if self.reported_latest is not None:
            return self.reported_latest
        return max(self.first - 1, self.published - self.lag)

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if path == "/ephemeral/sequence.json":
            return 200, {"sequence": self.latest()}, {}
        name = path.removeprefix("/ephemeral/").removesuffix(".json")
        if path.startswith("/ephemeral/") and name.isdigit():
            n = int(name)
            if self.expired_before <= n <= self.published and n in self.objects:
                return 200, self.objects[n], {}
        return 404, {"error": "not found"}, {}

    def served(self) -> list[int]:
        """Sequences answered with 200, in order."""
        return [
            int(p.removeprefix("/ephemeral/").removesuffix(".json"))
            for p in self.paths(200)
            if p != "/ephemeral/sequence.json"
        ]

    @staticmethod
    def path(sequence: int) -> str:
        return f"/ephemeral/{sequence}.json"
