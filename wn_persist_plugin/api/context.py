"""What the views receive: the database, the settings and the live figures of the
process they run in (no module globals)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from peewee import Database

from ..settings import Settings

FeedStatus = Callable[[], Mapping[str, Any] | None]
"""The feed position under `run`: `last_sequence`, `latest`, `lag` (None elsewhere)."""


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    db: Database
    feed_status: FeedStatus | None = None
