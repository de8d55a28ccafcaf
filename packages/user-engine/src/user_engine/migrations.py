"""The ordered manifest of schema versions shared by every store.

A store is ready only when its schema version equals ``LATEST_SCHEMA_VERSION``. Stores with a
schema (the Postgres store) ship one migration per entry, in this order; adding a version here
without the stores' migrations makes their readiness fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["LATEST_SCHEMA_VERSION", "SCHEMA_VERSIONS", "SchemaVersion"]


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One schema version: its number and what it introduced."""

    number: int
    name: str


SCHEMA_VERSIONS: Final[tuple[SchemaVersion, ...]] = (
    SchemaVersion(1, "initial: every record kind, audit log, outbox"),
    SchemaVersion(2, "profile_inputs: a profile resolution's reads as one statement"),
    SchemaVersion(3, "profile generations: a store caches the shared profile layers"),
    SchemaVersion(4, "outbox_hot_leases: taking a lease on an outbox event writes no index"),
)

LATEST_SCHEMA_VERSION: Final[int] = SCHEMA_VERSIONS[-1].number
