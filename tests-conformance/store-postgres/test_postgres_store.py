"""The PostgreSQL store against the conformance suite, written as any third party would.

Each test gets a fresh database (a copy of a migrated template) from the session's test
server (``testsupport/postgres.py``: an embedded server unless
``USER_ENGINE_POSTGRES_TEST_DSN`` is set), and the store connects as the runtime role.
"""

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from user_engine_conformance import StoreConformance


class TestPostgresStore(StoreConformance):
    adapter_name = "postgres"

    @pytest.fixture
    def adapter_settings(self, postgres_settings: Mapping[str, Any]) -> Mapping[str, Any]:
        return postgres_settings

    @pytest.fixture
    def unmigrated_adapter_settings(
        self, postgres_database_factory: Callable[..., Any]
    ) -> Mapping[str, Any] | None:
        return postgres_database_factory(migrated=False).settings
