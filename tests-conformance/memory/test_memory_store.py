"""The memory store against the conformance suite, written as any third party would."""

from collections.abc import Mapping
from typing import Any

import pytest
from user_engine_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    adapter_name = "memory"

    @pytest.fixture
    def unmigrated_adapter_settings(self) -> Mapping[str, Any] | None:
        return {"migrate": False}
