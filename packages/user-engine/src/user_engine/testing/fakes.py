"""Deterministic, in-process implementations of the small ports."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from user_engine.domain import Membership

__all__ = [
    "FixedClock",
    "InMemorySecretStore",
    "RecordingMembershipExporter",
    "SequentialIds",
    "TrustingIdentityVerifier",
]


class FixedClock:
    """A clock that only moves when told to (``advance``). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta``; return the new time."""
        with self._lock:
            self._now += delta
            return self._now


class SequentialIds:
    """Ids ``<prefix>000001``, ``<prefix>000002`` ... (one counter for all prefixes)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._counter):06d}"


class InMemorySecretStore:
    """Secrets in a dict. References are opaque (a digest of owner and a counter)."""

    def __init__(self) -> None:
        self._secrets: dict[str, bytes] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def put_secret(self, owner_id: str, secret: bytes) -> str:
        with self._lock:
            seed = f"{owner_id}:{next(self._counter)}".encode()
            reference = "sec_" + hashlib.sha256(seed).hexdigest()[:24]
            self._secrets[reference] = bytes(secret)
            return reference

    def delete_secret(self, reference: str) -> None:
        with self._lock:
            self._secrets.pop(reference, None)

    def has_secret(self, reference: str) -> bool:
        with self._lock:
            return reference in self._secrets

    def reveal(self, reference: str) -> bytes:
        """Test helper: the stored secret (production backends verify instead of reveal)."""
        with self._lock:
            return self._secrets[reference]


class TrustingIdentityVerifier:
    """Accepts every identity: the caller (an application or admin) vouches for it.

    ``require_evidence`` True rejects links without evidence (for testing the refusal path).
    """

    def __init__(self, *, require_evidence: bool = False) -> None:
        self.require_evidence = require_evidence

    def verify(self, issuer: str, subject: str, evidence: str | None) -> bool:
        return evidence is not None or not self.require_evidence


class RecordingMembershipExporter:
    """Keeps the last exported membership list per tenant."""

    def __init__(self) -> None:
        self.exports: dict[str, tuple[Membership, ...]] = {}

    def export(self, tenant_id: str, memberships: Sequence[Membership]) -> None:
        self.exports[tenant_id] = tuple(memberships)
