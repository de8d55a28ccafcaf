"""The reference in-memory store of user-engine."""

from user_engine_store_memory.store import MemoryStore

__all__ = ["MemoryStore"]
