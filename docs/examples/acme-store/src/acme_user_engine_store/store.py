"""``AcmeStore``: every record kept in process, one store per Acme region.

A real adapter would talk to Acme's database here; this example reuses the reference memory
store for the storage itself, so the tutorial can focus on what every adapter has to do:
take settings, register under a name, and pass the conformance suite.
"""

from __future__ import annotations

from user_engine_store_memory import MemoryStore

__all__ = ["AcmeStore"]


class AcmeStore(MemoryStore):
    """A ``UserEngineStore`` for one Acme region.

    :param region: the Acme region the data lives in (shown in diagnostics, never a value).
    """

    def __init__(self, region: str) -> None:
        super().__init__(name="acme")
        self.region = region

    def __repr__(self) -> str:
        return f"AcmeStore(region={self.region!r})"
