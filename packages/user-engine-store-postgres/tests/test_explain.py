"""Every query the store sends is index-backed, on a database seeded with 100k users.

The store is run over a recording connection while every one of its operations is exercised;
each recorded statement is then EXPLAINed as the runtime role, under the scope it ran with,
with the plan PostgreSQL would reuse for a prepared statement (``force_generic_plan``):

- no sequential scan of a big table (the realistic plan);
- with sequential scans disabled, no sequential scan at all: an index path exists even for
  tables that are small here (tenants, applications, catalogs) but need not stay small.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from user_engine.domain import (
    AccessScope,
    AuditFilter,
    AuditOutcome,
    Claim,
    ExternalIdentity,
    Layer,
    Membership,
    ProfileKey,
    RetryPolicy,
)
from user_engine.errors import ConflictError
from user_engine_store_postgres._transaction import SCOPE_SQL
from user_engine_store_postgres.hooks import create_store

USERS = 100_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)

SEED = f"""
SET synchronous_commit = off;
INSERT INTO user_engine.tenants
    SELECT 't' || lpad(g::text, 2, '0'), 'Tenant ' || g, 'active', now(), 1
    FROM generate_series(0, 9) g;
INSERT INTO user_engine.users
    SELECT 'u' || g, 'User ' || g, 'active', now(), now(), 1 FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.accounts
    SELECT 'acc' || g, 'u' || g, 'user' || g || '@example.org', 'user' || g || '@example.org',
           'active', now(), 1
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.tenant_accounts
    SELECT 't' || lpad((g % 10)::text, 2, '0'), 'u' || g, 'active', ARRAY['member'], now(),
           now(), 1
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.memberships
    SELECT 't' || lpad((g % 10)::text, 2, '0'), 'u' || g, 'staff', now()
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.external_identities
    SELECT 'https://idp.example', 'sub' || g, 'u' || g, now() FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.factors
    SELECT 'fac' || g, 'u' || g, 'totp', 'phone', 'ref' || g, now()
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.applications
    SELECT 'app' || g, 'App ' || g, now() FROM generate_series(1, 5) g;
INSERT INTO user_engine.catalog_versions
    SELECT 'app' || a, v,
           '[{{"name": "nick", "type": "string", "layers": ["user", "user-in-tenant",
              "tenant-default", "application-default"], "writers": ["self"]}}]'::jsonb,
           now(), 'operator:op'
    FROM generate_series(1, 5) a, generate_series(1, 3) v;
INSERT INTO user_engine.application_bindings
    SELECT 'app' || (g % 5 + 1), 't' || lpad((g % 10)::text, 2, '0'), 'u' || g,
           ARRAY['app1.nick'], now()
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.profile_values
    SELECT 'user', 'app' || (g % 5 + 1), 'nick', NULL, 'u' || g, '"n"', 1, 3, 'user:u', now()
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.profile_values
    SELECT 'user-in-tenant', 'app' || (g % 5 + 1), 'nick', 't' || lpad((g % 10)::text, 2, '0'),
           'u' || g, '"n"', 1, 3, 'user:u', now()
    FROM generate_series(1, {USERS}) g;
INSERT INTO user_engine.profile_values
    SELECT 'tenant-default', 'app1', 'nick', 't' || lpad(g::text, 2, '0'), NULL, '"d"', 1, 3,
           'op', now()
    FROM generate_series(0, 9) g;
INSERT INTO user_engine.profile_values
    SELECT 'application-default', 'app' || g, 'nick', NULL, NULL, '"d"', 1, 3, 'op', now()
    FROM generate_series(1, 5) g;
INSERT INTO user_engine.audit_records (id, occurred_at, tenant_id, actor_id, actor_kind, action,
        target_kind, target_id, outcome, reason_code, request_id, details)
    SELECT 'aud' || g, now() - (g || ' seconds')::interval, 't' || lpad((g % 10)::text, 2, '0'),
           'u' || (g % {USERS} + 1), 'user', 'profile.write', 'user', 'u' || g, 'success', '',
           '', '{{}}'
    FROM generate_series(1, {2 * USERS}) g;
INSERT INTO user_engine.outbox_events (id, event_type, aggregate_type, aggregate_id, tenant_id,
        occurred_at, payload, status)
    SELECT 'evt' || g, 'profile.value_written', 'user', 'u' || (g % {USERS} + 1),
           't' || lpad((g % 10)::text, 2, '0'), now(), '{{}}',
           CASE WHEN g % 20 = 0 THEN 'dead' ELSE 'pending' END
    FROM generate_series(1, {USERS // 5}) g;
ANALYZE;
"""

BIG = 10_000  # rows; a sequential scan of a table this big fails the realistic check


class RecordingConnection(psycopg.Connection[Any]):
    """Records every statement the store sends (and the scope each ran under)."""

    statements: list[tuple[str, Any]]

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.statements.append((str(query), params))
        return super().execute(query, params, **kwargs)


@pytest.fixture(scope="module")
def seeded_database(postgres_server: Any) -> Iterator[Any]:
    database = postgres_server.create_database()
    try:
        with psycopg.connect(database.admin_dsn, autocommit=True) as conn:
            conn.execute(SEED)
        yield database
    finally:
        postgres_server.drop_database(database.name)


def _exercise_every_operation(store: Any) -> None:
    """Call every store method once with ids that exist in the seed."""
    platform, tenant = AccessScope.all_tenants(), AccessScope.for_tenant("t01")
    key_user = ProfileKey(Layer.USER, "app2", "nick", None, "u50001")
    key_tenant = ProfileKey(Layer.TENANT_DEFAULT, "app1", "nick", "t01", None)
    key_app = ProfileKey(Layer.APPLICATION_DEFAULT, "app1", "nick", None, None)
    key_uit = ProfileKey(Layer.USER_IN_TENANT, "app2", "nick", "t01", "u50001")
    with store.transaction(tenant) as tx:
        tx.get_tenant("t01")
        tx.list_tenants()
        tx.get_user("u50001")
        tx.get_account("acc50001")
        tx.list_accounts("u50001")
        tx.get_tenant_account("t01", "u50001")
        tx.list_tenant_accounts_of_tenant("t01")
        tx.list_tenant_accounts_of_user("u50001")
        tx.list_memberships("t01")
        tx.list_memberships("t01", "u50001")
        tx.get_identity("https://idp.example", "sub50001")
        tx.list_identities("u50001")
        tx.get_factor("fac50001")
        tx.list_factors("u50001")
        tx.get_application("app1")
        tx.list_applications()
        tx.get_binding("app2", "t01", "u50001")
        tx.list_bindings_of_user("u50001")
        tx.get_catalog_version("app1", 2)
        tx.get_current_catalog("app1")
        tx.list_current_catalogs()
        tx.list_catalog_versions("app1")
        for key in (key_user, key_tenant, key_app, key_uit):
            tx.get_profile_value(key)
        tx.profile_values_for("u50001", "t01")
        tx.profile_values_for("u50001", None)
        # Writes: every statement shape once, conflict and stale paths included.
        new_user = replace(tx.get_user("u50001"), id="u-new")
        tx.insert_user(new_user)
        # After a write, profile values are read by a plain query (before, profile_snapshot:
        # see test_profile_snapshot_reads_by_index_on_100k_users).
        tx.profile_values_for("u50001", "t01")
        with contextlib.suppress(ConflictError):
            tx.insert_tenant(tx.get_tenant("t01"))
        tx.insert_account(replace(tx.get_account("acc50001"), id="acc-new", handle="new@x"))
        with contextlib.suppress(ConflictError):
            tx.insert_account(tx.get_account("acc50001"))
        tx.insert_tenant_account(replace(tx.get_tenant_account("t01", "u50001"), user_id="u-new"))
        tx.insert_membership(Membership("t01", "u-new", "staff", T0))
        tx.insert_identity(ExternalIdentity("https://idp.example", "sub-new", "u-new", T0))
        tx.insert_factor(replace(tx.get_factor("fac50001"), id="fac-new"))
        tx.put_binding(replace(tx.get_binding("app2", "t01", "u50001"), user_id="u-new"))
        tx.update_user(tx.get_user("u50001"), expected_version=1)
        with contextlib.suppress(ConflictError):
            tx.update_user(tx.get_user("u50001"), expected_version=99)
        tx.update_tenant(tx.get_tenant("t01"), expected_version=1)
        tx.update_account(tx.get_account("acc50001"), expected_version=1)
        with contextlib.suppress(ConflictError):
            tx.update_account(tx.get_account("acc50001"), expected_version=99)
        tx.update_tenant_account(tx.get_tenant_account("t01", "u50001"), expected_version=1)
        tx.delete_membership("t01", "u50001", "staff")
        tx.delete_identity("https://idp.example", "sub50002")
        tx.delete_factor("fac50002")
        tx.delete_binding("app2", "t01", "u50001")
        for key in (key_user, key_tenant, key_uit):
            current = tx.get_profile_value(key)
            assert current is not None
            tx.put_profile_value(current, expected_version=None)
            tx.put_profile_value(current, expected_version=current.version + 1)
            with contextlib.suppress(ConflictError):
                tx.put_profile_value(current, expected_version=0)
            tx.delete_profile_value(key, expected_version=current.version + 2)
        with contextlib.suppress(ConflictError):
            tx.delete_profile_value(key_app, expected_version=0)
        tx.append_audit(_audit("t01"))
        tx.append_event(_event("u50001", "t01"))
    with store.transaction(platform) as tx:
        tx.insert_application(replace(tx.get_application("app1"), id="app-new"))
        tx.insert_catalog_version(replace(tx.get_current_catalog("app1"), version=4))
        tx.delete_profile_value(key_app, expected_version=None)
    store.append_audit_autonomous(_audit(None))
    store.read_audit(AuditFilter(limit=50), platform)
    store.read_audit(AuditFilter(limit=50), tenant)
    store.read_audit(AuditFilter(actor_id="u7", limit=50), platform)
    store.read_audit(AuditFilter(action="profile.write", limit=50, after_sequence=1000), tenant)
    store.read_audit(AuditFilter(outcome=AuditOutcome.DENIED, limit=50), tenant)
    claimed = store.claim_events(limit=50, lease=timedelta(seconds=30), now=T0)
    store.ack_events([c.claim for c in claimed[:10]])
    store.release_events(
        [c.claim for c in claimed[10:]] + [Claim("evt20", "x")],
        error="boom", now=T0, policy=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    store.pending_events(limit=50, after_sequence=100)
    dead = store.dead_letters(limit=50)
    store.requeue_dead_letters([e.id for e in dead[:5]], now=T0)
    store.outbox_stats()
    store.record_counts()


def _audit(tenant_id: str | None) -> Any:
    from user_engine.domain import AuditRecord

    return AuditRecord("aud-x-" + str(tenant_id), T0, tenant_id, "op", "platform-operator",
                       "test", "user", "u1", AuditOutcome.SUCCESS)  # fmt: skip


def _event(aggregate: str, tenant_id: str | None) -> Any:
    from user_engine.domain import OutboxEvent

    return OutboxEvent("evt-x-" + aggregate, "test", "user", aggregate, tenant_id, T0, {})


def _is_query(statement: str) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper()
    if head not in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
        return False
    return "user_engine." in statement and "set_config" not in statement


def _seq_scans(plan: Any) -> list[str]:
    found: list[str] = []
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            found.append(str(plan.get("Relation Name")))
        for value in plan.values():
            found += _seq_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            found += _seq_scans(item)
    return found


@pytest.fixture(scope="module")
def recorded_statements(seeded_database: Any) -> list[tuple[str, Any, Any]]:
    conn = RecordingConnection.connect(seeded_database.runtime_dsn, autocommit=True)
    conn.statements = []
    store = create_store({"connection": conn})
    try:
        _exercise_every_operation(store)
    finally:
        store.close()
        conn.close()
    scope: Any = ("global", "")
    found: list[tuple[str, Any, Any]] = []
    seen: set[str] = set()
    for statement, params in conn.statements:
        if statement.startswith(SCOPE_SQL):  # the relay's calls add settings to it
            scope = params
        elif _is_query(statement) and statement not in seen:
            seen.add(statement)
            found.append((statement, params, scope))
    return found


def _table_sizes(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples::bigint FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'user_engine' AND c.relkind = 'r'"
        ).fetchall()
    return {name: int(count) for name, count in rows}


def test_the_exercise_covers_every_kind_of_statement(
    recorded_statements: list[tuple[str, Any, Any]],
) -> None:
    # A guard against the recording silently capturing too little.
    assert len(recorded_statements) >= 50


def test_every_store_query_is_index_backed_on_100k_users(
    seeded_database: Any, recorded_statements: list[tuple[str, Any, Any]]
) -> None:
    sizes = _table_sizes(seeded_database.admin_dsn)
    assert sizes["users"] >= USERS
    problems: list[str] = []
    with psycopg.connect(seeded_database.runtime_dsn) as conn:
        for statement, params, scope in recorded_statements:
            for forced in (False, True):
                with conn.transaction(force_rollback=True):
                    conn.execute(SCOPE_SQL, scope)
                    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    if forced:
                        conn.execute("SET LOCAL enable_seqscan = off")
                    row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
                assert row is not None
                plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
                scans = _seq_scans(plan)
                if "(SELECT count(*) FROM user_engine.tenants)" in statement:
                    # record_counts counts every row of every table: O(rows) by nature, and
                    # row-level security (tenant_id) rules out an index-only count of the
                    # outbox, which has no index holding tenant_id.
                    bad = [t for t in scans if t != "outbox_events"] if forced else []
                elif "(SELECT count(*) FROM user_engine.outbox_events" in statement:
                    # outbox_stats counts the backlog (pending and dead rows): O(backlog).
                    bad = scans if forced else []
                elif forced:
                    bad = scans
                else:
                    bad = [t for t in scans if sizes.get(t, 0) > BIG]
                if bad:
                    kind = "even with seqscan disabled" if forced else "realistic plan"
                    problems.append(f"{kind}: Seq Scan on {bad} for\n  {statement.strip()}")
    assert problems == [], "\n".join(problems)


def _nested_plans(dsn: str, role: str, settings: list[str]) -> list[Any]:
    """The plans of every statement one call of profile_snapshot runs, nested ones included
    (auto_explain reports each as a notice), as the runtime role, in a session of its own
    (PL/pgSQL keeps a session's plans, so each check needs a fresh one)."""
    notices: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for setting in ["auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on",
                        "auto_explain.log_format = json", "auto_explain.log_level = notice",
                        "plan_cache_mode = force_generic_plan", *settings]:  # fmt: skip
            conn.execute(f"SET {setting}")
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        for scope in (["tenant", "t01"], ["platform", ""], ["global", ""]):
            # No copies offered: every part is read (and planned).
            conn.execute(
                "SELECT user_engine.profile_snapshot(%s, %s, %s, %s, true, NULL, NULL, NULL)",
                [*scope, "u50001", "t01"],
            )
    return [json.loads(n.split("plan:", 1)[1]) for n in notices if "plan:" in n]


def test_profile_snapshot_reads_by_index_on_100k_users(seeded_database: Any) -> None:
    role = str(conninfo_to_dict(seeded_database.runtime_dsn)["user"])
    sizes = _table_sizes(seeded_database.admin_dsn)
    problems: list[str] = []
    for forced in (False, True):
        plans = _nested_plans(
            seeded_database.admin_dsn, role, ["enable_seqscan = off"] if forced else []
        )
        texts = " ".join(plan["Query Text"] for plan in plans)
        assert "user_engine.profile_values" in texts, "the nested statements were seen"
        assert "user_engine.profile_layers" in texts
        for plan in plans:
            scans = _seq_scans(plan["Plan"])
            bad = scans if forced else [t for t in scans if sizes.get(t, 0) > BIG]
            if bad:
                kind = "even with seqscan disabled" if forced else "realistic plan"
                problems.append(f"{kind}: Seq Scan on {bad} for\n  {plan['Query Text']}")
    assert problems == [], "\n".join(problems)
