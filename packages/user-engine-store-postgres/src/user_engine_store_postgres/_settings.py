"""The settings table of the ``postgres`` store (``[postgres]`` in the engine config)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from user_engine.errors import ConfigurationError

__all__ = ["SETTINGS", "PostgresSettings"]

SETTINGS: Mapping[str, str] = {
    "dsn": "libpq connection string or URI of the runtime role",
    "owner_dsn": "connection string of the owner role migrations run as (default: dsn)",
    "pool": "a psycopg_pool.ConnectionPool to borrow from (instead of dsn; not closed)",
    "connection": "one psycopg.Connection to use (instead of dsn; not closed)",
    "min_pool_size": "connections the store's own pool keeps open (default 1)",
    "max_pool_size": "most connections of the store's own pool (default 10, at least 2)",
    "pool_timeout": "seconds to wait for a free connection (default 30)",
    "migrate": "apply pending migrations when the store starts (default: false with a dsn, "
    "true with the embedded server)",
    "embedded_data_dir": "data directory of the embedded server started when no dsn, pool "
    "or connection is given (default ./.user-engine/postgres)",
}
"""Every accepted key and what it means (unknown keys are a configuration error)."""


def _invalid(key: str, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"postgres setting {key!r} must be {expected}",
        code="configuration.invalid",
        details={"setting": key},
    )


def _text(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(key, "a non-empty connection string")
    return value


def _integer(settings: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(key, f"an integer of at least {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Validated settings of the ``postgres`` store factory."""

    dsn: str | None
    owner_dsn: str | None
    pool: Any
    connection: Any
    min_pool_size: int
    max_pool_size: int
    pool_timeout: float
    migrate: bool
    embedded_data_dir: Path | None

    @property
    def embedded(self) -> bool:
        """True when the store starts its own embedded server (no dsn, pool or connection)."""
        return self.dsn is None and self.pool is None and self.connection is None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> PostgresSettings:
        """Validate a settings mapping; ``ConfigurationError`` naming the offending key."""
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                "postgres settings must be a mapping", code="configuration.invalid"
            )
        unknown = sorted(str(key) for key in settings if key not in SETTINGS)
        if unknown:
            raise ConfigurationError(
                f"unknown postgres setting(s): {', '.join(unknown)}; known: " + ", ".join(SETTINGS),
                code="configuration.unknown_setting",
                details={"settings": ", ".join(unknown)},
            )
        import psycopg  # noqa: PLC0415 - only to check the types of provider objects
        import psycopg_pool  # noqa: PLC0415

        dsn = _text(settings, "dsn")
        owner_dsn = _text(settings, "owner_dsn")
        pool = settings.get("pool")
        if pool is not None and not isinstance(pool, psycopg_pool.ConnectionPool):
            raise _invalid("pool", "a psycopg_pool.ConnectionPool")
        connection = settings.get("connection")
        if connection is not None and not isinstance(connection, psycopg.Connection):
            raise _invalid("connection", "a psycopg.Connection")
        if sum(x is not None for x in (dsn, pool, connection)) > 1:
            raise ConfigurationError(
                "give only one of the postgres settings dsn, pool and connection",
                code="configuration.invalid",
            )
        min_size = _integer(settings, "min_pool_size", 1, 0)
        max_size = _integer(settings, "max_pool_size", 10, 2)
        if min_size > max_size:
            raise _invalid("min_pool_size", "at most max_pool_size")
        timeout = settings.get("pool_timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise _invalid("pool_timeout", "a positive number of seconds")
        data_dir = settings.get("embedded_data_dir")
        if data_dir is not None:
            if not isinstance(data_dir, str | os.PathLike) or not str(data_dir).strip():
                raise _invalid("embedded_data_dir", "a directory path")
            if dsn is not None or pool is not None or connection is not None:
                raise ConfigurationError(
                    "embedded_data_dir starts an embedded server and cannot be combined with "
                    "dsn, pool or connection",
                    code="configuration.invalid",
                    details={"setting": "embedded_data_dir"},
                )
            data_dir = Path(data_dir)
        embedded = dsn is None and pool is None and connection is None
        migrate = settings.get("migrate", embedded)
        if not isinstance(migrate, bool):
            raise _invalid("migrate", "true or false")
        if embedded and owner_dsn is not None:
            raise ConfigurationError(
                "owner_dsn needs a dsn (without one the store starts an embedded server)",
                code="configuration.invalid",
                details={"setting": "owner_dsn"},
            )
        return cls(dsn, owner_dsn, pool, connection, min_size, max_size, float(timeout),
                   migrate, data_dir)  # fmt: skip
