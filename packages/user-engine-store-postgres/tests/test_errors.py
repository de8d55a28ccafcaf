"""Driver errors become core errors; bad input gets a typed error and changes nothing;
secret values never reach an error message or a log."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from user_engine.domain import AccessScope, Layer
from user_engine.errors import (
    ConflictError,
    NotReadyError,
    StoreUnavailableError,
    UserEngineError,
    ValidationError,
)
from user_engine_store_postgres._errors import translate
from user_engine_store_postgres.hooks import create_store

PLATFORM = AccessScope.all_tenants()
CANARY = "canary-secret-7f3a9c"


def test_an_unreachable_server_is_a_store_unavailable_error(postgres_database: Any) -> None:
    parts = conninfo_to_dict(postgres_database.runtime_dsn)
    parts.update(port="1", connect_timeout="1")
    store = create_store({"dsn": make_conninfo(**parts), "pool_timeout": 0.5, "min_pool_size": 0})
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            _in_transaction(store, lambda tx: tx.get_user("u1"))
        assert raised.value.code == "store.unavailable"
        with pytest.raises(StoreUnavailableError):
            store.outbox_stats()
    finally:
        store.close()


def test_an_unmigrated_database_is_a_not_ready_error(postgres_database_factory: Any) -> None:
    store = create_store(postgres_database_factory(migrated=False).settings)
    try:
        with pytest.raises(NotReadyError) as raised:
            _in_transaction(store, lambda tx: tx.get_user("u1"))
        assert raised.value.code == "schema.behind"
        assert "user-engine migrate" in raised.value.message
    finally:
        store.close()


def test_a_broken_connection_is_unavailable_and_the_store_recovers(
    store: Any, records: Any, postgres_database: Any
) -> None:
    user = records.user()

    def lose_the_connection_midway() -> None:
        with store.transaction(PLATFORM) as tx:
            tx.insert_user(user)
            pid = tx._conn.info.backend_pid
            with psycopg.connect(postgres_database.admin_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            tx.insert_user(records.user())

    with pytest.raises(StoreUnavailableError):
        lose_the_connection_midway()
    with store.transaction(PLATFORM) as tx:
        assert tx.get_user(user.id) is None, "the broken transaction did not commit"
        tx.insert_user(user)
    with store.transaction(PLATFORM) as tx:
        assert tx.get_user(user.id) == user


def test_a_deadlock_is_a_retryable_conflict(postgres_settings: Any, records: Any) -> None:
    store = create_store({**postgres_settings, "max_pool_size": 4})
    try:
        first, second = records.tenant(), records.tenant()
        with store.transaction(PLATFORM) as tx:
            tx.insert_tenant(first)
            tx.insert_tenant(second)
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def update(order: tuple[Any, Any]) -> None:
            try:
                with store.transaction(PLATFORM) as tx:
                    tx.update_tenant(replace(order[0], name="x"), expected_version=1)
                    barrier.wait()
                    tx.update_tenant(replace(order[1], name="y"), expected_version=1)
                outcomes.append("committed")
            except UserEngineError as error:
                outcomes.append(error)

        threads = [threading.Thread(target=update, args=(o,))
                   for o in ((first, second), (second, first))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(map(str, outcomes))[-1] == "committed"
        errors = [o for o in outcomes if isinstance(o, UserEngineError)]
        assert [(type(e), e.code) for e in errors] == [(ConflictError, "store.retry")]
    finally:
        store.close()


@pytest.mark.parametrize("text", ["nul\x00inside", "unpaired \ud800 surrogate"])
def test_text_postgresql_cannot_store_is_a_validation_error_that_changes_nothing(
    store: Any, records: Any, text: str
) -> None:
    user = records.user()
    with pytest.raises(ValidationError):
        _in_transaction(store, lambda tx: tx.insert_user(replace(user, display_name=text)))
    assert store.record_counts()["users"] == 0


def test_a_number_out_of_range_is_a_validation_error(store: Any, records: Any) -> None:
    with pytest.raises(ValidationError):
        _in_transaction(store, lambda tx: tx.insert_user(replace(records.user(), version=2**40)))
    assert store.record_counts()["users"] == 0


def test_a_swallowed_statement_failure_makes_commit_fail_instead_of_losing_writes(
    store: Any, records: Any
) -> None:
    kept = records.user()

    def swallow_a_failed_statement() -> None:
        with store.transaction(PLATFORM) as tx:
            tx.insert_user(kept)
            with pytest.raises(ValidationError):
                tx.update_user(replace(kept, version=1), expected_version=2**40)

    with pytest.raises(ConflictError) as raised:
        swallow_a_failed_statement()
    assert raised.value.code == "store.rolled_back"
    assert store.record_counts()["users"] == 0


def test_statements_after_a_swallowed_failure_are_refused_as_rolled_back(
    store: Any, records: Any
) -> None:
    user = records.user()
    refused: list[str] = []

    def go_on_after_a_failure() -> None:
        with store.transaction(PLATFORM) as tx:
            tx.insert_user(user)
            with pytest.raises(ValidationError):
                tx.update_user(user, expected_version=2**40)
            with pytest.raises(ConflictError) as raised:
                tx.get_user(user.id)
            refused.append(raised.value.code)

    with pytest.raises(ConflictError):
        go_on_after_a_failure()
    assert refused == ["store.rolled_back"]
    assert store.record_counts()["users"] == 0


def test_a_failure_inside_a_savepoint_leaves_the_transaction_usable(
    store: Any, records: Any
) -> None:
    kept, lost = records.user(), records.user()

    def fail_inside(tx: Any) -> None:
        with tx.savepoint():
            tx.insert_user(lost)
            tx.update_user(lost, expected_version=2**40)

    with store.transaction(PLATFORM) as tx:
        tx.insert_user(kept)
        with pytest.raises(ValidationError):
            fail_inside(tx)
    with store.transaction(PLATFORM) as tx:
        assert tx.get_user(kept.id) == kept
        assert tx.get_user(lost.id) is None


def _in_transaction(store: Any, work: Any) -> None:
    with store.transaction(PLATFORM) as tx:
        work(tx)


def test_a_secret_value_never_reaches_error_messages_or_logs(
    store: Any, records: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app, user = records.application(), records.user()
    with store.transaction(PLATFORM) as tx:
        tx.put_profile_value(records.value(app, CANARY, user=user), expected_version=0)
    failures: list[UserEngineError] = []
    for attempt in (
        lambda tx: tx.put_profile_value(records.value(app, CANARY, user=user), expected_version=0),
        lambda tx: tx.put_profile_value(records.value(app, CANARY + "\x00", user=user),
                                        expected_version=None),
        lambda tx: tx.delete_profile_value(
            records.value(app, CANARY, user=user).key, expected_version=7),
    ):  # fmt: skip
        with pytest.raises(UserEngineError) as raised:
            _in_transaction(store, attempt)
        failures.append(raised.value)
    for error in failures:
        assert CANARY not in str(error)
        assert CANARY not in repr(error.to_dict())
    assert CANARY not in caplog.text


def test_a_unique_violation_names_the_constraint_but_never_the_values(
    runtime_connection: psycopg.Connection[Any],
) -> None:
    runtime_connection.execute("SELECT set_config('user_engine.scope', 'platform', false)")
    insert = "INSERT INTO user_engine.users VALUES (%s, 'n', 'active', now(), now(), 1)"
    runtime_connection.execute(insert, [CANARY])
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        runtime_connection.execute(insert, [CANARY])
    assert CANARY in str(raised.value), "the driver's own message does quote the value"
    translated = translate(raised.value, "insert_user")
    assert isinstance(translated, ConflictError)
    assert translated.details["constraint"] == "users_pkey"
    assert CANARY not in str(translated)
    assert CANARY not in repr(translated.to_dict())


ids = st.text(min_size=0, max_size=80)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user_id=ids, tenant_id=ids, handle=ids)
def test_arbitrary_text_is_stored_exactly_or_refused_with_a_typed_error(
    store: Any, records: Any, user_id: str, tenant_id: str, handle: str
) -> None:
    before = store.record_counts()
    user = replace(records.user(), id=records.user().id + user_id)
    try:
        with store.transaction(AccessScope.for_tenant(tenant_id or "t")) as tx:
            tx.insert_user(user)
            tx.insert_account(records.account(user, handle or "h"))
            tx.get_tenant_account(tenant_id, user.id)
            tx.profile_values_for(user.id, tenant_id)
    except ValidationError:
        assert store.record_counts() == before, "a refused write changes nothing"
        return
    except ConflictError as error:
        conflict = error.code
    else:
        conflict = ""
    if conflict:
        assert conflict == "account.handle_taken"
        return
    with store.transaction(PLATFORM) as tx:
        assert tx.get_user(user.id) == user


def test_sql_injection_strings_are_plain_data(store: Any, records: Any) -> None:
    nasty = "x'); DROP TABLE user_engine.users; --"
    tenant = records.tenant()
    with store.transaction(PLATFORM) as tx:
        tx.insert_tenant(replace(tenant, name=nasty))
        tx.profile_values_for(nasty, nasty)
        assert tx.get_tenant(tenant.id).name == nasty
        assert tx.get_user(nasty) is None
    assert store.record_counts()["tenants"] == 1


def test_profile_values_round_trip_their_exact_json_type(store: Any, records: Any) -> None:
    app = records.application()
    values = ["text", "", 0, -7, 2**53, 1.5, 2.0, -0.25, 1e-7, True, False, "ünïcødé ✓"]
    with store.transaction(PLATFORM) as tx:
        for value in values:
            user = records.user()
            tx.put_profile_value(records.value(app, value, user=user), expected_version=None)
            stored = tx.get_profile_value(records.value(app, value, user=user).key)
            assert stored is not None
            assert (type(stored.value), stored.value) == (type(value), value)
    assert Layer.USER  # the layer every value above was written at
