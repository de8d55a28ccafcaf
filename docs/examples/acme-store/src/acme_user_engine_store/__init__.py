"""Acme's store for user-engine (an example third-party adapter)."""

from acme_user_engine_store.store import AcmeStore

__all__ = ["AcmeStore"]
