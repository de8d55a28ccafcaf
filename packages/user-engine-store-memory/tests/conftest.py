"""Fixtures of the memory store tests: a migrated store and record builders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from user_engine_store_memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    """A fresh, migrated memory store."""
    fresh = MemoryStore()
    fresh.migrate()
    yield fresh
    fresh.close()
