"""Production implementations of the small ports: the system clock and random ids."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

__all__ = ["RandomIds", "SystemClock"]


class SystemClock:
    """``Clock`` reading the system time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    """``IdGenerator`` giving time-ordered random ids: ``<prefix><12 hex ms><16 hex random>``.

    Time-ordered ids keep B-tree inserts local; 64 random bits make collisions negligible.
    """

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"
