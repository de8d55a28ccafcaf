"""The PostgreSQL store of user-engine: psycopg 3, row-level security, SQL migrations."""

from user_engine_store_postgres.embedded import EmbeddedPostgres
from user_engine_store_postgres.store import PostgresStore

__all__ = ["EmbeddedPostgres", "PostgresStore"]
