"""Behaviour specific to the PostgreSQL store: round trips, scopes, the catalog cache,
LISTEN/NOTIFY. (The port's contract itself is checked by tests-conformance/store-postgres.)"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from user_engine.domain import AccessScope, AuditFilter, Layer
from user_engine.errors import NotFoundError, UserEngineError
from user_engine_store_postgres.hooks import create_store

PLATFORM = AccessScope.all_tenants()


@contextlib.contextmanager
def counting_round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the times the client waits for the server: each Sync, and each flush request
    sent to fetch results (psycopg's pipeline internals, patched for this count only)."""
    from psycopg import _pipeline_base

    counter = [0]
    original_sync = psycopg.Pipeline.sync
    original_fetch = _pipeline_base.BasePipeline._fetch_gen

    def sync(self: psycopg.Pipeline) -> None:
        counter[0] += 1
        original_sync(self)

    def fetch(self: Any, *, flush: bool) -> Any:
        if flush and self.result_queue:
            counter[0] += 1
        return original_fetch(self, flush=flush)

    with monkeypatch.context() as patch:
        patch.setattr(psycopg.Pipeline, "sync", sync)
        patch.setattr(_pipeline_base.BasePipeline, "_fetch_gen", fetch)
        yield counter


def test_resolving_a_profile_takes_one_round_trip_and_no_commit(
    store: Any, records: Any, two_tenants: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = two_tenants
    user, app = records.user(), records.application()
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(records.value(app, "v", user=user), expected_version=0)
        tx.list_current_catalogs()  # warm the catalog cache
    with (
        counting_round_trips(monkeypatch) as trips,
        store.transaction(AccessScope.for_tenant(a.id)) as tx,
    ):
        catalogs = tx.list_current_catalogs()
        values = tx.profile_values_for(user.id, a.id)
    assert catalogs
    assert values
    assert trips == [1], "catalogs travel with the values; a read-only transaction has no COMMIT"


def test_current_catalogs_read_before_any_other_call_behave_as_a_list(
    store: Any, records: Any
) -> None:
    app = records.application()
    catalog = records.catalog(app)
    with store.transaction(PLATFORM) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(catalog)
    with store.transaction(PLATFORM) as tx:
        alone = tx.list_current_catalogs()
        assert alone == [catalog]  # filled by a round trip of its own
        followed = tx.list_current_catalogs()
        tx.get_user("nobody")
        assert json.dumps([c.application_id for c in followed]) == json.dumps([app.id])
        assert [*followed] == [catalog]
        assert list.__add__([], followed) == [catalog], "C-level readers see the items"
        untouched = tx.list_current_catalogs()
    assert len(untouched) == 1, "filled when the transaction ended"


def test_a_mutation_with_audit_and_event_takes_two_round_trips(
    store: Any, records: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = records.user()
    audit = records.audit(None)
    with counting_round_trips(monkeypatch) as trips, store.transaction(PLATFORM) as tx:
        tx.insert_user(user)  # the scope travels with it
        tx.append_event(records.event(user.id))  # the aggregate lock is in the statement
        tx.append_audit(audit)
    assert trips == [2], "insert (its answer decides exists/conflict), then the committing Sync"
    [stored] = store.read_audit(AuditFilter(actor_id=audit.actor_id), PLATFORM).records
    assert tx.audit_sequences() == {audit.id: stored.sequence}, "the Sync brought the sequence"


def test_a_failing_append_surfaces_at_commit_and_rolls_everything_back(
    store: Any, records: Any
) -> None:
    user, event = records.user(), records.event("agg")
    with store.transaction(PLATFORM) as tx:
        tx.append_event(event)
    with pytest.raises(UserEngineError), store.transaction(PLATFORM) as tx:  # noqa: PT012
        tx.insert_user(user)
        tx.append_event(event)  # the same id again: only queued, so no error yet
    with store.transaction(PLATFORM) as tx:
        assert tx.get_user(user.id) is None, "the commit failed, nothing of it is kept"
    assert store.readiness().ready, "the store works on (a fresh connection replaces that one)"


def _fail_in_savepoint(tx: Any, record: Any) -> None:
    with tx.savepoint(PLATFORM):
        tx.append_audit(record)
        raise RuntimeError("undo")


def test_a_savepoint_scope_applies_inside_and_is_restored_after(
    store: Any, two_tenants: Any, records: Any
) -> None:
    a, b = two_tenants
    for explicit in (False, True):
        with store.transaction(AccessScope.for_tenant(a.id)) as tx:
            if explicit:
                tx.append_audit(records.audit(a.id))
            with tx.savepoint(PLATFORM):
                assert {t.id for t in tx.list_tenants()} >= {a.id, b.id}
            assert [t.id for t in tx.list_tenants()] == [a.id]
            with pytest.raises(RuntimeError):
                _fail_in_savepoint(tx, records.audit(b.id))
            assert [t.id for t in tx.list_tenants()] == [a.id]
            with pytest.raises(NotFoundError):
                tx.insert_membership(records.membership(b, records.user()))


def test_a_catalog_version_rolled_back_is_never_served_from_the_cache(
    store: Any, records: Any
) -> None:
    app = records.application()
    with store.transaction(PLATFORM) as tx:
        tx.insert_application(app)
        tx.insert_catalog_version(records.catalog(app, 1))

    def publish_read_and_roll_back() -> None:
        with store.transaction(PLATFORM) as tx:
            tx.insert_catalog_version(records.catalog(app, 2, default="rolled back"))
            assert tx.get_current_catalog(app.id).version == 2
            assert tx.get_catalog_version(app.id, 2) is not None
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        publish_read_and_roll_back()
    published = records.catalog(app, 2, default="published")
    with store.transaction(PLATFORM) as tx:
        assert tx.get_catalog_version(app.id, 2) is None
        tx.insert_catalog_version(published)
    with store.transaction(PLATFORM) as tx:
        assert tx.get_catalog_version(app.id, 2) == published
        assert tx.get_current_catalog(app.id) == published
        assert tx.list_current_catalogs() == [published]


def test_cached_catalogs_are_still_the_current_ones_after_a_new_publish(
    postgres_settings: Any, records: Any
) -> None:
    app = records.application()
    reader, writer = create_store(postgres_settings), create_store(postgres_settings)
    try:
        with writer.transaction(PLATFORM) as tx:
            tx.insert_application(app)
            tx.insert_catalog_version(records.catalog(app, 1))
        with reader.transaction(PLATFORM) as tx:
            assert tx.get_current_catalog(app.id).version == 1
        newer = records.catalog(app, 2, default="newer")
        with writer.transaction(PLATFORM) as tx:
            tx.insert_catalog_version(newer)
        with reader.transaction(PLATFORM) as tx:
            assert tx.get_current_catalog(app.id) == newer
            assert [c.version for c in tx.list_catalog_versions(app.id)] == [1, 2]
    finally:
        reader.close()
        writer.close()


def test_profile_values_of_every_layer_resolve_in_one_query(
    store: Any, records: Any, two_tenants: Any
) -> None:
    a, b = two_tenants
    app, user, other = records.application(), records.user(), records.user()
    rows = [
        records.value(app, "uit", layer=Layer.USER_IN_TENANT, user=user, tenant=a),
        records.value(app, "user", layer=Layer.USER, user=user),
        records.value(app, "tenant", layer=Layer.TENANT_DEFAULT, tenant=a),
        records.value(app, "app", layer=Layer.APPLICATION_DEFAULT),
        records.value(app, "b", layer=Layer.TENANT_DEFAULT, tenant=b),
        records.value(app, "other", layer=Layer.USER, user=other),
    ]
    with store.transaction(PLATFORM) as tx:
        for row in rows:
            tx.put_profile_value(row, expected_version=0)
    with store.transaction(AccessScope.for_tenant(a.id)) as tx:
        found = [v.value for v in tx.profile_values_for(user.id, a.id)]
        assert found == ["uit", "user", "tenant", "app"]
        assert [v.value for v in tx.profile_values_for(user.id, b.id)] == ["user", "app"]
        assert [v.value for v in tx.profile_values_for(user.id, None)] == ["user", "app"]


def test_a_conflict_leaves_the_transaction_usable(store: Any, records: Any) -> None:
    tenant, other = records.tenant(), records.tenant()
    with store.transaction(PLATFORM) as tx:
        tx.insert_tenant(tenant)
    with store.transaction(PLATFORM) as tx:
        with pytest.raises(Exception, match="already exists"):
            tx.insert_tenant(tenant)
        tx.insert_tenant(other)
    with store.transaction(PLATFORM) as tx:
        assert {t.id for t in tx.list_tenants()} == {tenant.id, other.id}


def test_a_committed_event_wakes_a_waiter_and_waiting_without_events_times_out(
    store: Any, records: Any
) -> None:
    assert store.wait_for_events(0.0) is False
    with store.transaction(PLATFORM) as tx:
        tx.append_event(records.event("agg"))
    assert store.wait_for_events(30.0) is True


def test_waiting_falls_back_to_polling_when_listen_is_impossible(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise psycopg.OperationalError("no LISTEN behind this pooler")

    monkeypatch.setattr(store._source, "connect", refuse)
    assert store.wait_for_events(0.01) is False


def test_updates_replace_every_field_and_bump_the_version(store: Any, records: Any) -> None:
    user = records.user()
    with store.transaction(PLATFORM) as tx:
        tx.insert_user(user)
        tx.update_user(replace(user, display_name="Renamed"), expected_version=1)
        assert tx.get_user(user.id) == replace(user, display_name="Renamed", version=2)


def test_an_autonomous_append_gets_a_later_sequence_than_queued_appends_before_it(
    store: Any, records: Any
) -> None:
    queued, denial = records.audit(None), records.audit(None)
    with store.transaction(PLATFORM) as tx:
        tx.insert_user(records.user())
        tx.append_audit(queued)  # only queued
        autonomous = store.append_audit_autonomous(denial)  # sends the queued one first
    assert tx.audit_sequences()[queued.id] < autonomous.sequence
