"""The service on the PostgreSQL store, end to end (built through the engine config)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from user_engine.config import Engine, EngineConfig, build_engine
from user_engine.demo import DEMO_SECRETS, run_demo
from user_engine.domain import AccessScope, AuditFilter, AuditOutcome, Principal
from user_engine.errors import AuthorizationDenied


@pytest.fixture
def engine(postgres_settings: Any) -> Iterator[Engine]:
    config = EngineConfig(store="postgres", adapters={"postgres": dict(postgres_settings)})
    with build_engine(config) as engine:
        yield engine


def test_the_demo_runs_on_postgres_and_prints_no_secret(engine: Engine) -> None:
    out = io.StringIO()
    run_demo(engine, out)
    text = out.getvalue()
    assert "Diagnostics" in text
    for secret in DEMO_SECRETS:
        assert secret not in text
    counts = engine.store.record_counts()
    assert counts["tenants"] == 2
    assert counts["outbox_events"] == 0, "the demo relayed every event"


def test_a_denial_stays_audited_when_the_enclosing_transaction_rolls_back(
    engine: Engine,
) -> None:
    service = engine.service
    operator = Principal.platform_operator("op")
    service.create_tenant(operator, "acme", name="Acme")
    service.create_tenant(operator, "globex", name="Globex")
    intruder = Principal.tenant_admin("adm", "acme")

    def create_then_be_denied() -> None:
        with service.transaction():
            service.create_user(operator, display_name="Rolled back")
            service.suspend_tenant(intruder, "globex")

    with pytest.raises(AuthorizationDenied):
        create_then_be_denied()
    page = engine.store.read_audit(
        AuditFilter(outcome=AuditOutcome.DENIED), AccessScope.all_tenants()
    )
    assert [r.actor_id for r in page.records] == ["adm"]
    assert engine.store.record_counts()["users"] == 0
