"""A fake Wanderer map API: `/api/maps/{slug}/tracked-characters` behind a bearer token."""

from __future__ import annotations

from typing import Any

from .base import FakeServer


def map_entry(eve_id: int, *, tracked: bool = True, name: str | None = None) -> dict[str, Any]:
    """An entry shaped like the real API's: ids as strings, the UUID character_id."""
    return {
        "id": f"00000000-0000-4000-8000-{eve_id:012d}",
        "tracked": tracked,
        "map_id": "678c43cf-0000-4000-8000-000000000001",
        "character_id": f"90ff63d4-0000-4000-8000-{eve_id:012d}",
        "character": {
            "name": name or f"Pilot {eve_id}",
            "eve_id": str(eve_id),
            "corporation_id": 98801377,
            "corporation_ticker": "SAL.T",
            "alliance_id": None,
            "alliance_ticker": None,
        },
        "inserted_at": "2025-01-01T03:32:51.041452Z",
        "updated_at": "2025-01-01T03:32:51.041452Z",
    }


class FakeMap(FakeServer):
    """The map API's contract: 404 for an unknown map, 401 for a wrong token or a map
    whose subscription is inactive (`subscription_active`), 403 when the map's public API
    is disabled (`public_api`)."""

    def __init__(self, slug: str, api_key: str, entries: list[dict[str, Any]]) -> None:
        super().__init__()
        self.slug = slug
        self.api_key = api_key
        self.entries = entries
        self.subscription_active = True
        self.public_api = True

    @property
    def path(self) -> str:
        return f"/api/maps/{self.slug}/tracked-characters"

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if path != self.path:
            return 404, {"error": "map not found"}, {}
        if not self.public_api:
            return 403, {"error": "Public API is disabled for this map"}, {}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "unauthorized"}, {}
        if not self.subscription_active:
            return 401, {"error": "map subscription is not active"}, {}
        return 200, {"data": list(self.entries)}, {}
