"""Typed tables against generic records: the measurement behind the store's schema choice.

The seeds of this project described a store over generic record tables (one table of
``(kind, key, tenant_id, data jsonb)``). The PostgreSQL store uses one typed table per
record kind instead. This benchmark builds both shapes for the same data (tenant accounts
and profile values of N users) in one database and measures, with raw psycopg:

- inserting a tenant account (unique per tenant and user);
- reading one tenant account by its key;
- listing a user's tenant accounts (a secondary key: typed composite index vs expression
  index on the JSON);
- reading every profile value that resolves a user in a tenant (four key ranges);
- the size on disk of each shape (tables and indexes).

Ratios are typed / generic (rates: higher is better for typed; size: smaller is better).
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _report import Figure, median_of, report
from psycopg.types.json import Jsonb
from user_engine_store_postgres.embedded import EmbeddedPostgres

SCHEMA = """
CREATE TABLE typed_tenant_accounts (
    tenant_id text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
    status text NOT NULL, roles text[] NOT NULL, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL, version integer NOT NULL,
    PRIMARY KEY (tenant_id, user_id));
CREATE INDEX typed_tenant_accounts_by_user ON typed_tenant_accounts (user_id, tenant_id);
CREATE TABLE typed_profile_values (
    layer text NOT NULL, application_id text COLLATE "C" NOT NULL,
    attribute text COLLATE "C" NOT NULL, tenant_id text COLLATE "C",
    user_id text COLLATE "C", value jsonb NOT NULL, version integer NOT NULL,
    catalog_version integer NOT NULL, written_by text NOT NULL, written_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (user_id, tenant_id, application_id, attribute, layer));
CREATE TABLE records (
    kind text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, tenant_id text COLLATE "C",
    data jsonb NOT NULL, PRIMARY KEY (kind, key));
CREATE INDEX records_tenant_account_by_user ON records ((data->>'user_id'), key)
    WHERE kind = 'tenant_account';
CREATE INDEX records_profile_by_user ON records ((data->>'user_id'), (data->>'tenant_id'))
    WHERE kind = 'profile_value';
"""

SEED = """
INSERT INTO typed_tenant_accounts
    SELECT 't' || (g % 100), 'u' || g, 'active', ARRAY['member'], now(), now(), 1
    FROM generate_series(1, {users}) g;
INSERT INTO records
    SELECT 'tenant_account', 't' || (g % 100) || '/u' || g, 't' || (g % 100),
           jsonb_build_object('tenant_id', 't' || (g % 100), 'user_id', 'u' || g,
               'status', 'active', 'roles', jsonb_build_array('member'),
               'created_at', now(), 'updated_at', now(), 'version', 1)
    FROM generate_series(1, {users}) g;
INSERT INTO typed_profile_values
    SELECT 'user', 'app1', 'attr' || n, NULL, 'u' || g, to_jsonb('v' || g), 1, 1, 'user:u', now()
    FROM generate_series(1, {users}) g, generate_series(1, 3) n;
INSERT INTO typed_profile_values
    SELECT 'tenant-default', 'app1', 'attr1', 't' || t, NULL, '"d"', 1, 1, 'op', now()
    FROM generate_series(0, 99) t;
INSERT INTO records
    SELECT 'profile_value', 'user/app1/attr' || n || '//u' || g, NULL,
           jsonb_build_object('layer', 'user', 'application_id', 'app1', 'attribute',
               'attr' || n, 'tenant_id', NULL, 'user_id', 'u' || g, 'value', 'v' || g,
               'version', 1, 'catalog_version', 1, 'written_by', 'user:u',
               'written_at', now())
    FROM generate_series(1, {users}) g, generate_series(1, 3) n;
INSERT INTO records
    SELECT 'profile_value', 'tenant-default/app1/attr1/t' || t || '/', 't' || t,
           jsonb_build_object('layer', 'tenant-default', 'application_id', 'app1',
               'attribute', 'attr1', 'tenant_id', 't' || t, 'user_id', NULL, 'value', 'd',
               'version', 1, 'catalog_version', 1, 'written_by', 'op', 'written_at', now())
    FROM generate_series(0, 99) t;
"""

TYPED_VALUES = " UNION ALL ".join(
    "SELECT layer, application_id, attribute, tenant_id, user_id, value, version, "
    "catalog_version, written_by, written_at FROM typed_profile_values WHERE " + condition
    for condition in (
        "user_id = %(u)s AND tenant_id IS NULL",
        "user_id IS NULL AND tenant_id IS NULL",
        "user_id = %(u)s AND tenant_id = %(t)s",
        "user_id IS NULL AND tenant_id = %(t)s",
    )
)
GENERIC_VALUES = " UNION ALL ".join(
    "SELECT data FROM records WHERE kind = 'profile_value' AND " + condition
    for condition in (
        "data->>'user_id' = %(u)s AND data->>'tenant_id' IS NULL",
        "data->>'user_id' IS NULL AND data->>'tenant_id' IS NULL",
        "data->>'user_id' = %(u)s AND data->>'tenant_id' = %(t)s",
        "data->>'user_id' IS NULL AND data->>'tenant_id' = %(t)s",
    )
)


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``operation`` repeated for about ``seconds``."""
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            operation()
        done += 50
    return done / elapsed


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20k users, short runs")
    args = parser.parse_args()
    users, seconds = (20_000, 0.5) if args.quick else (100_000, 1.5)
    directory = Path(tempfile.mkdtemp(prefix="ue-pgschema-"))
    directory.chmod(0o711)
    server = EmbeddedPostgres(directory / "data", server_settings={"max_wal_size": "4GB"})
    figures: list[Figure] = []
    try:
        server.start()
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
            conn.execute(SEED.format(users=users).encode())
            conn.execute("VACUUM ANALYZE")
            new_ids = itertools.count(users + 1)

            def pick() -> str:
                return f"u{random.randint(1, users)}"

            def typed_insert() -> None:
                n = next(new_ids)
                conn.execute(
                    "INSERT INTO typed_tenant_accounts VALUES (%s, %s, 'active', %s, now(), "
                    "now(), 1) ON CONFLICT DO NOTHING RETURNING 1",
                    [f"t{n % 100}", f"u{n}", ["member"]],
                ).fetchone()

            def generic_insert() -> None:
                n = next(new_ids)
                data = {"tenant_id": f"t{n % 100}", "user_id": f"u{n}", "status": "active",
                        "roles": ["member"], "version": 1}  # fmt: skip
                conn.execute(
                    "INSERT INTO records VALUES ('tenant_account', %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    [f"t{n % 100}/u{n}", f"t{n % 100}", Jsonb(data)],
                ).fetchone()

            def typed_get() -> None:
                n = int(pick()[1:])
                conn.execute(
                    "SELECT * FROM typed_tenant_accounts WHERE tenant_id = %s AND user_id = %s",
                    [f"t{n % 100}", f"u{n}"],
                ).fetchone()

            def generic_get() -> None:
                n = int(pick()[1:])
                conn.execute(
                    "SELECT data FROM records WHERE kind = 'tenant_account' AND key = %s",
                    [f"t{n % 100}/u{n}"],
                ).fetchone()

            def typed_list() -> None:
                conn.execute(
                    "SELECT * FROM typed_tenant_accounts WHERE user_id = %s ORDER BY tenant_id",
                    [pick()],
                ).fetchall()

            def generic_list() -> None:
                conn.execute(
                    "SELECT data FROM records WHERE kind = 'tenant_account' "
                    "AND data->>'user_id' = %s ORDER BY key",
                    [pick()],
                ).fetchall()

            def resolve(query: str) -> Callable[[], None]:
                def run() -> None:
                    n = int(pick()[1:])
                    assert conn.execute(query, {"u": f"u{n}", "t": f"t{n % 100}"}).fetchall()

                return run

            pairs: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
                ("insert a tenant account", typed_insert, generic_insert),
                ("read a tenant account by key", typed_get, generic_get),
                ("list a user's tenant accounts", typed_list, generic_list),
                ("read a user's profile values (4 ranges)", resolve(TYPED_VALUES),
                 resolve(GENERIC_VALUES)),
            ]  # fmt: skip
            for name, typed, generic in pairs:
                for op in (typed, generic):  # warm up (prepared statements, caches)
                    for _ in range(20):
                        op()
                ours = median_of(3, lambda typed=typed: rate(typed, seconds))
                limit = median_of(3, lambda generic=generic: rate(generic, seconds))
                figures.append(Figure(f"{name}: typed vs generic", ours, limit, "op/s"))
            sizes: dict[str, Any] = {}
            for label, tables in (
                ("typed", "'typed_tenant_accounts', 'typed_profile_values'"),
                ("generic", "'records'"),
            ):
                row = conn.execute(
                    "SELECT sum(pg_total_relation_size(oid)) FROM pg_class "
                    f"WHERE relname IN ({tables})"
                ).fetchone()
                assert row is not None
                sizes[label] = int(row[0]) / 2**20
            # For size, smaller is better: report generic / typed so that higher is better.
            figures.append(Figure(
                "size on disk: generic / typed (MiB)", sizes["generic"], sizes["typed"], "MiB",
            ))  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    report(
        "postgres_schema_bench",
        figures,
        [
            f"{users:,} users: one tenant account and 3 profile values each, in both shapes",
            "ratio > 1: typed tables are faster (or, for size, smaller)",
        ],
    )


if __name__ == "__main__":
    main()
