"""The default telemetry: does nothing, costs next to nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NoTelemetry"]


class _NoRecorder:
    def finish(self, outcome: str, error_code: str = "") -> None:
        """Ignore."""


_RECORDER = _NoRecorder()


class NoTelemetry:
    """``Telemetry`` that records nothing (used when no telemetry adapter is configured)."""

    name = "none"

    @contextmanager
    def operation(
        self, operation: str, *, tenant_id: str | None, principal_kind: str
    ) -> Iterator[_NoRecorder]:
        yield _RECORDER

    def relay_progress(
        self, *, published: int, failed: int, dead_lettered: int, lag_seconds: float | None
    ) -> None:
        """Ignore."""
