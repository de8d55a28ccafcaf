"""Acme's store against the user-engine conformance suite."""

import pytest
from user_engine_conformance import StoreConformance


class TestAcmeStore(StoreConformance):
    adapter_name = "acme"

    @pytest.fixture
    def adapter_settings(self):
        return {"region": "eu-west"}

    @pytest.fixture
    def unmigrated_adapter_settings(self):
        return {"region": "eu-west", "migrate": False}
