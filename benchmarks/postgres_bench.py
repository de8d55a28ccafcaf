"""PostgreSQL store: the mutation write path and profile resolution against raw psycopg.

Limits measured in the same run, on the same server and tables:

- **write path**: one store transaction doing what the service does for a mutation: a domain
  row (a profile value upsert), its outbox event and its audit record (scope setting and the
  per-aggregate outbox lock included), against raw psycopg writing the same three rows in
  one transaction (``with conn.transaction(): 3 x execute``: BEGIN, 3 INSERT, COMMIT), with
  1 and 4 connections. Raw in one pipelined round trip is printed for context.
- **profile resolution**: one store transaction reading the current catalogs and every
  profile value of a user in a tenant, merged by ``resolve_profile``, against a raw
  primary-key read of the user row (one round trip). The round trips of the resolution are
  counted (target: at most 2). For context: the store's reads alone (no merge), and those
  against the statement the store sends for them (``user_engine.profile_snapshot``, one
  call) sent by hand: "raw same reads"; and that statement against the PK read sent by
  ``pgbench`` (libpq, no Python on the client): the share of the cost that is the server's.
  And a *floor*: that statement by hand, the user's values made records by the store's
  parser and the store's copies of the shared layers merged by ``resolve_profile``; the
  fewest steps that resolve a profile from this schema, with no pool and no store
  transaction. What separates the floor from the target is all a store could spend.
- **flat with size**: both figures at 10k and at 1M users (``--quick``: 10k and 100k); the
  large database's cost must stay within 1.3x of the small one's. Both databases are
  measured together (``measure``: the steps a figure compares run in alternating short
  slices), so a drift of the machine's speed falls on all of them alike.

The server is an embedded PostgreSQL with default durability (fsync on), in a temporary
directory, seeded server-side with generate_series (1M users in well under a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _report import Figure, report
from psycopg import _pipeline_base
from psycopg.types.json import Jsonb
from user_engine.domain import (
    AccessScope,
    AuditOutcome,
    AuditRecord,
    Layer,
    OutboxEvent,
    ProfileKey,
    ProfileValue,
    resolve_profile,
)
from user_engine_store_postgres import _rows
from user_engine_store_postgres._bootstrap import (
    DatabaseRoles,
    ensure_database,
    ensure_roles,
)
from user_engine_store_postgres._migrator import apply_migrations
from user_engine_store_postgres._shared_layers import Offer
from user_engine_store_postgres.embedded import EmbeddedPostgres, _binaries
from user_engine_store_postgres.hooks import create_store
from user_engine_store_postgres.store import PostgresStore

TENANTS = 100
APPLICATIONS = 5
NOW = datetime.now(UTC)

SEED = """
SET synchronous_commit = off;
INSERT INTO user_engine.tenants
    SELECT 't' || g, 'Tenant ' || g, 'active', now(), 1 FROM generate_series(0, {tenants} - 1) g;
INSERT INTO user_engine.users
    SELECT 'u' || g, 'User ' || g, 'active', now(), now(), 1
    FROM generate_series(1, {users}) g;
INSERT INTO user_engine.accounts
    SELECT 'acc' || g, 'u' || g, 'user' || g || '@example.org', 'user' || g || '@example.org',
           'active', now(), 1
    FROM generate_series(1, {users}) g;
INSERT INTO user_engine.tenant_accounts
    SELECT 't' || (g % {tenants}), 'u' || g, 'active', ARRAY['member'], now(), now(), 1
    FROM generate_series(1, {users}) g;
INSERT INTO user_engine.external_identities
    SELECT 'https://idp.example', 'sub' || g, 'u' || g, now() FROM generate_series(1, {users}) g;
INSERT INTO user_engine.applications
    SELECT 'app' || g, 'App ' || g, now() FROM generate_series(1, {applications}) g;
INSERT INTO user_engine.catalog_versions
    SELECT 'app' || a, 1,
           ('[' || string_agg(format(
               '{{"name": "attr%s", "type": "string", "default": "d", "layers": ["user", '
               '"user-in-tenant", "tenant-default", "application-default"]}}', n), ',') || ']'
           )::jsonb,
           now(), 'operator:op'
    FROM generate_series(1, {applications}) a, generate_series(1, 8) n GROUP BY a;
INSERT INTO user_engine.profile_values
    SELECT 'user', 'app' || a, 'attr' || n, NULL, 'u' || g, to_jsonb('v' || g), 1, 1,
           'user:u', now()
    FROM generate_series(1, {users}) g, generate_series(1, 1) a, generate_series(1, 2) n;
INSERT INTO user_engine.profile_values
    SELECT 'user-in-tenant', 'app1', 'attr3', 't' || (g % {tenants}), 'u' || g,
           to_jsonb('w' || g), 1, 1, 'user:u', now()
    FROM generate_series(1, {users}) g;
INSERT INTO user_engine.profile_values
    SELECT 'tenant-default', 'app' || a, 'attr4', 't' || t, NULL, '"td"', 1, 1, 'op', now()
    FROM generate_series(0, {tenants} - 1) t, generate_series(1, {applications}) a;
INSERT INTO user_engine.audit_records (id, occurred_at, tenant_id, actor_id, actor_kind, action,
        target_kind, target_id, outcome, reason_code, request_id, details)
    SELECT 'aud' || g, now(), 't' || (g % {tenants}), 'u' || g, 'user', 'profile.write', 'user',
           'u' || g, 'success', '', '', '{{}}'
    FROM generate_series(1, {users}) g;
"""

UPSERT = (
    "INSERT INTO user_engine.profile_values AS p (layer, application_id, attribute, tenant_id, "
    "user_id, value, version, catalog_version, written_by, written_at) "
    "VALUES ('user', 'app1', 'attr1', NULL, %s, %s, 1, 1, %s, %s) "
    "ON CONFLICT ON CONSTRAINT profile_values_key DO UPDATE SET value = EXCLUDED.value, "
    "version = p.version + 1, written_by = EXCLUDED.written_by, written_at = EXCLUDED.written_at"
)
OUTBOX = (
    "INSERT INTO user_engine.outbox_events (id, event_type, aggregate_type, aggregate_id, "
    "tenant_id, occurred_at, payload) VALUES (%s, 'profile.value_written', 'user', %s, NULL, "
    "%s, %s)"
)
AUDIT = (
    "INSERT INTO user_engine.audit_records (id, occurred_at, tenant_id, actor_id, actor_kind, "
    "action, target_kind, target_id, outcome, reason_code, request_id, details) VALUES "
    "(%s, %s, NULL, %s, 'user', 'profile.write', 'attribute', 'app1.attr1', 'success', '', '', "
    "%s)"
)
# What the store sends to resolve a profile: one call of the function migration 0003
# installs. It sets the scope, then returns the shared layers (current catalogs, application
# and tenant defaults) whose generation is not the one offered, and the user's own values,
# as one JSON value.
PROFILE_SNAPSHOT = "SELECT user_engine.profile_snapshot(%s, %s, %s, %s, %s, %s, %s, %s)"
PK_READ = (
    "SELECT id, display_name, status, created_at, updated_at, version FROM user_engine.users "
    "WHERE id = %s"
)


def tenant_of(user: str) -> str:
    """The tenant the seed gave user ``u<n>``."""
    return f"t{int(user[1:]) % TENANTS}"


class Bench:
    """One seeded database, the store on it, and raw connections for the limits."""

    def __init__(self, server: EmbeddedPostgres, roles: DatabaseRoles, users: int) -> None:
        self.users = users
        self.name = f"bench_{users}"
        ensure_database(server.dsn, self.name, roles.owner)
        owner = server.dsn_for(self.name, user=roles.owner, password=roles.owner_password)
        apply_migrations(owner)
        self.admin_dsn = server.dsn_for(self.name)
        started = time.perf_counter()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                SEED.format(tenants=TENANTS, users=users, applications=APPLICATIONS).encode()
            )
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        self.seed_seconds = time.perf_counter() - started
        self.runtime_dsn = server.dsn_for(
            self.name, user=roles.runtime, password=roles.runtime_password
        )
        self.store: PostgresStore = create_store({"dsn": self.runtime_dsn, "max_pool_size": 8})
        self.ids = itertools.count()

    def close(self) -> None:
        self.store.close()

    def user(self) -> str:
        return f"u{random.randint(1, self.users)}"

    # -- the write path ---------------------------------------------------------------------
    def store_mutation(self) -> None:
        n = next(self.ids)
        user = self.user()
        key = ProfileKey(Layer.USER, "app1", "attr1", None, user)
        with self.store.transaction(AccessScope()) as tx:
            tx.put_profile_value(
                ProfileValue(key, f"value {n}", 0, 1, f"user:{user}", NOW), expected_version=None
            )
            tx.append_event(
                OutboxEvent(
                    f"evt_s{n}_{uuid.uuid4().hex[:8]}", "profile.value_written", "user", user,
                    None, NOW, {"attribute": "app1.attr1", "layer": "user", "value": f"v{n}"},
                )
            )  # fmt: skip
            tx.append_audit(
                AuditRecord(
                    f"aud_s{n}_{uuid.uuid4().hex[:8]}", NOW, None, user, "user",
                    "profile.write", "attribute", "app1.attr1", AuditOutcome.SUCCESS,
                    details={"layer": "user"},
                )
            )  # fmt: skip

    def raw_mutation(self, conn: psycopg.Connection[Any]) -> None:
        n = next(self.ids)
        user = self.user()
        with conn.transaction():
            conn.execute(UPSERT, [user, Jsonb(f"value {n}"), f"user:{user}", NOW])
            conn.execute(
                OUTBOX,
                [f"evt_r{n}_{uuid.uuid4().hex[:8]}", user, NOW,
                 Jsonb({"attribute": "app1.attr1", "layer": "user", "value": f"v{n}"})],
            )  # fmt: skip
            conn.execute(
                AUDIT, [f"aud_r{n}_{uuid.uuid4().hex[:8]}", NOW, user, Jsonb({"layer": "user"})]
            )

    def raw_mutation_pipelined(self, conn: psycopg.Connection[Any]) -> None:
        n = next(self.ids)
        user = self.user()
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            conn.execute(UPSERT, [user, Jsonb(f"value {n}"), f"user:{user}", NOW])
            conn.execute(
                OUTBOX,
                [f"evt_p{n}_{uuid.uuid4().hex[:8]}", user, NOW,
                 Jsonb({"attribute": "app1.attr1", "layer": "user", "value": f"v{n}"})],
            )  # fmt: skip
            conn.execute(
                AUDIT, [f"aud_p{n}_{uuid.uuid4().hex[:8]}", NOW, user, Jsonb({"layer": "user"})]
            )
            conn.execute("COMMIT")
            pipeline.sync()

    # -- resolution -------------------------------------------------------------------------
    def store_reads(self, user: str | None = None) -> tuple[str, str, list[Any], list[Any]]:
        """What the store does to resolve a profile: current catalogs and every value."""
        user = user or self.user()
        tenant = tenant_of(user)
        with self.store.transaction(AccessScope.for_tenant(tenant)) as tx:
            catalogs = tx.list_current_catalogs()
            values = tx.profile_values_for(user, tenant)
        assert catalogs
        return user, tenant, catalogs, values

    def store_resolution(self) -> None:
        user, tenant, catalogs, values = self.store_reads()
        profile = resolve_profile(user_id=user, tenant_id=tenant, catalogs=catalogs, values=values)
        assert profile.attributes

    def raw_pk_read(self, conn: psycopg.Connection[Any]) -> None:
        assert conn.execute(PK_READ, [self.user()]).fetchone() is not None

    def raw_same_reads(self, conn: psycopg.Connection[Any]) -> None:
        """The resolution's statement by hand on an autocommit connection (one statement,
        one round trip), offering the generations of the store's copies, rows only (the
        JSON value parsed, no records built)."""
        row = self.snapshot_by_hand(conn)[3]
        assert row[0][1], "the user's own values"

    def snapshot_by_hand(self, conn: psycopg.Connection[Any]) -> tuple[str, str, Offer, Any]:
        """A random user, their tenant, the store's copies offered, and the row of the
        resolution's statement sent by hand offering them."""
        user = self.user()
        tenant = tenant_of(user)
        offer = self.store.shared_layers.offer(tenant, with_catalogs=True)
        row = conn.execute(
            PROFILE_SNAPSHOT, ["tenant", tenant, user, tenant, True, *offer.generations()]
        ).fetchone()
        assert row is not None
        return user, tenant, offer, row

    def floor_resolution(self, conn: psycopg.Connection[Any]) -> None:
        """The fewest steps that resolve a profile from this schema: the resolution's
        statement by hand (as ``raw_same_reads``), the user's values made records by the
        store's own parser, the store's copies of the shared layers, and the core's merge.
        No pool, no store transaction: what is left for them is this floor's distance to
        the target."""
        user, tenant, offer, row = self.snapshot_by_hand(conn)
        catalogs, application, tenant_defaults = offer
        assert catalogs is not None, "the store's copies"
        assert application is not None
        assert tenant_defaults is not None
        layers, own = row[0]
        assert all(entry[2] is None for entry in layers), "the copies are current"
        values = _rows.profile_values_unsorted(own, user, tenant)
        values += application.items
        values += tenant_defaults.items
        profile = resolve_profile(
            user_id=user, tenant_id=tenant, catalogs=catalogs.items, values=values
        )
        assert profile.attributes

    def resolution_round_trips(self) -> int:
        """Times the client waits for the server while resolving: Syncs and flushes
        (psycopg's pipeline internals, patched for this count only)."""
        counter = [0]
        original_sync = psycopg.Pipeline.sync
        original_fetch = _pipeline_base.BasePipeline._fetch_gen

        def sync(pipeline: psycopg.Pipeline) -> None:
            counter[0] += 1
            original_sync(pipeline)

        def fetch(pipeline: Any, *, flush: bool) -> Any:
            if flush and pipeline.result_queue:
                counter[0] += 1
            return original_fetch(pipeline, flush=flush)

        psycopg.Pipeline.sync = sync  # type: ignore[method-assign]
        _pipeline_base.BasePipeline._fetch_gen = fetch  # type: ignore[method-assign]
        try:
            self.store_reads()
        finally:
            psycopg.Pipeline.sync = original_sync  # type: ignore[method-assign]
            _pipeline_base.BasePipeline._fetch_gen = original_fetch  # type: ignore[method-assign]
        return counter[0]


@contextlib.contextmanager
def raw_connections(dsn: str, count: int, autocommit: bool) -> Iterator[list[Any]]:
    conns = [psycopg.connect(dsn, autocommit=autocommit) for _ in range(count)]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()


def throughput(operations: list[Callable[[], None]], seconds: float) -> tuple[int, float]:
    """Operations done and seconds taken, each callable run in its own thread for about
    ``seconds`` (the time counts until the last operation has finished)."""
    barrier = threading.Barrier(len(operations) + 1)
    done = [0] * len(operations)
    stop = threading.Event()

    def run(i: int) -> None:
        barrier.wait()
        while not stop.is_set():
            operations[i]()
            done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(operations))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(done), time.perf_counter() - started


def bench_steps(
    bench: Bench, stack: contextlib.ExitStack
) -> list[tuple[str, list[Callable[[], None]]]]:
    """Every measured step of one database, warmed up (connections closed by ``stack``)."""
    raw = stack.enter_context(raw_connections(bench.admin_dsn, 4, autocommit=False))
    reader = stack.enter_context(raw_connections(bench.admin_dsn, 1, autocommit=True))
    runtime = stack.enter_context(raw_connections(bench.runtime_dsn, 1, autocommit=True))
    for _ in range(3):  # warm up: pool, prepared statements, catalog cache
        bench.store_mutation()
        bench.raw_mutation(raw[0])
        bench.store_resolution()
    for n in range(1, TENANTS + 1):  # a user of every tenant: the store's copies
        bench.store_reads(f"u{n}")

    def raw_pipelined() -> None:
        raw[0].autocommit = True  # the pipeline sends BEGIN/COMMIT itself
        try:
            bench.raw_mutation_pipelined(raw[0])
        finally:
            raw[0].autocommit = False

    steps: list[tuple[str, list[Callable[[], None]]]] = []
    for n in (1, 4):
        steps.append((f"store write x{n}", [bench.store_mutation] * n))
        steps.append((f"raw write x{n}", [lambda c=c: bench.raw_mutation(c) for c in raw[:n]]))
    steps += [
        ("raw pipelined write x1", [raw_pipelined]),
        ("store reads", [bench.store_reads]),
        ("store resolution", [bench.store_resolution]),
        ("raw pk read", [lambda: bench.raw_pk_read(reader[0])]),
        ("raw same reads", [lambda: bench.raw_same_reads(runtime[0])]),
        ("floor resolution", [lambda: bench.floor_resolution(runtime[0])]),
    ]
    return steps


def libpq_rates(bench: Bench, seconds: float, rounds: int) -> tuple[float, float]:
    """Median rates of the resolution's statement and of the PK read sent by ``pgbench``
    (the C client of the server's own distribution, one connection, prepared statements),
    alternating: what the two cost with no Python on the client. The statement resolves
    users of tenant t1 and offers the store's current generations, as the store does."""
    pgbench = _binaries() / "pgbench"
    generations = bench.store.shared_layers.offer("t1", with_catalogs=True).generations()
    assert None not in generations, "the store holds copies of every layer of tenant t1"
    known = ", ".join(str(g) for g in generations)
    pick = f"\\set k random(0, {bench.users // TENANTS - 1})\n\\set u :k * {TENANTS} + 1\n"
    scripts = {
        "pk": (bench.admin_dsn, pick + "SELECT id, display_name, status, created_at, updated_at, "
               "version FROM user_engine.users WHERE id = 'u' || :u;\n"),
        "snapshot": (bench.runtime_dsn, pick + "SELECT user_engine.profile_snapshot('tenant', "
                     f"'t1', 'u' || :u, 't1', true, {known});\n"),
    }  # fmt: skip
    rates: dict[str, list[float]] = {"pk": [], "snapshot": []}
    with tempfile.TemporaryDirectory(prefix="ue-pgbench-scripts-") as scratch:
        for name, (_, script) in scripts.items():
            (Path(scratch) / f"{name}.sql").write_text(script, encoding="utf-8")
        for round_number in range(rounds):
            order = list(scripts) if round_number % 2 == 0 else list(reversed(scripts))
            for name in order:
                dsn = scripts[name][0]
                done = subprocess.run(
                    [str(pgbench), "--no-vacuum", "--protocol=prepared", "--client=1",
                     f"--time={max(1, round(seconds))}", f"--file={Path(scratch) / name}.sql",
                     dsn],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                found = re.search(r"^tps = ([0-9.]+)", done.stdout, re.MULTILINE)
                assert found, f"pgbench printed no tps: {done.stdout} {done.stderr}"
                rates[name].append(float(found.group(1)))
    median = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    return median["snapshot"], median["pk"]


GROUPS = (
    ("store write x1", "raw write x1", "raw pipelined write x1"),
    ("store write x4", "raw write x4"),
    ("store resolution", "raw pk read", "store reads", "raw same reads", "floor resolution"),
)
"""Steps compared with each other, measured in alternating slices (see ``measure``)."""

SLICES = 10
"""Slices per step and round."""


def measure(benches: list[Bench], seconds: float, rounds: int) -> dict[int, dict[str, float]]:
    """Median rates per database size: ``rounds`` rates of every step, each from
    ``seconds`` of work.

    This is a shared 2-core machine whose speed moves by half within seconds. So the steps
    a figure compares (ours and its limit, at both database sizes: a group of ``GROUPS``)
    are measured in alternating slices of ``seconds / SLICES``, each slice running every
    step of the group once, in reverse order every other slice: a change of speed falls on
    all of them alike, and a step's rate in a round is its operations over its time, summed
    over the slices. The median over rounds then drops the rounds a burst spoiled.
    """
    samples: dict[tuple[int, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        steps = {
            (bench.users, name): operations
            for bench in benches
            for name, operations in bench_steps(bench, stack)
        }
        groups = [[(b.users, name) for name in group for b in benches] for group in GROUPS]
        assert sorted(key for group in groups for key in group) == sorted(steps), "GROUPS"
        for _ in range(rounds):
            for group in groups:
                totals = {key: [0.0, 0.0] for key in group}
                for slice_number in range(SLICES):
                    for key in group if slice_number % 2 == 0 else reversed(group):
                        count, elapsed = throughput(steps[key], seconds / SLICES)
                        totals[key][0] += count
                        totals[key][1] += elapsed
                for key, (count, elapsed) in totals.items():
                    samples.setdefault(key, []).append(count / elapsed)
    results: dict[int, dict[str, float]] = {}
    for (users, name), values in samples.items():
        results.setdefault(users, {})[name] = sorted(values)[len(values) // 2]
    return results


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k and 100k users, short runs")
    args = parser.parse_args()
    sizes = (10_000, 100_000) if args.quick else (10_000, 1_000_000)
    seconds, rounds = (1.0, 5) if args.quick else (2.0, 7)
    directory = Path(tempfile.mkdtemp(prefix="ue-pgbench-"))
    directory.chmod(0o711)
    server = EmbeddedPostgres(
        directory / "data",
        server_settings={"max_wal_size": "8GB", "checkpoint_timeout": "30min",
                         "shared_buffers": "512MB", "max_connections": "50"},
    )  # fmt: skip
    results: dict[int, dict[str, float]] = {}
    libpq = (0.0, 0.0)
    notes: list[str] = []
    try:
        server.start()
        roles = DatabaseRoles("bench_owner", "owner-pw", "bench_app", "app-pw")
        ensure_roles(server.dsn, roles)
        trips = 0
        benches: list[Bench] = []
        try:
            for users in sizes:
                benches.append(Bench(server, roles, users))
                notes.append(f"{users:,} users seeded in {benches[-1].seed_seconds:.1f} s")
            results = measure(benches, seconds, rounds)
            libpq = libpq_rates(benches[0], seconds, rounds)
            trips = max(bench.resolution_round_trips() for bench in benches)
        finally:
            for bench in benches:
                bench.close()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    small, large = sizes
    figures: list[Figure] = []
    for users in sizes:
        r = results[users]
        label = f"{users // 1000}k users" if users < 1_000_000 else f"{users // 1_000_000}M users"
        for connections in (1, 4):
            figures.append(Figure(
                f"write path x{connections} conn vs raw ({label})",
                r[f"store write x{connections}"], r[f"raw write x{connections}"], "tx/s", 0.8,
            ))  # fmt: skip
        figures.append(Figure(
            f"write path x1 vs raw pipelined ({label})",
            r["store write x1"], r["raw pipelined write x1"], "tx/s",
        ))  # fmt: skip
        figures.append(Figure(
            f"profile resolution vs raw PK read ({label})",
            r["store resolution"], r["raw pk read"], "op/s", 0.5,
        ))  # fmt: skip
        figures.append(Figure(
            f"  floor: statement by hand + records + merge vs raw PK read ({label})",
            r["floor resolution"], r["raw pk read"], "op/s",
        ))  # fmt: skip
        figures.append(Figure(
            f"  its store reads alone vs raw PK read ({label})",
            r["store reads"], r["raw pk read"], "op/s",
        ))  # fmt: skip
        figures.append(Figure(
            f"  its store reads vs raw same reads ({label})",
            r["store reads"], r["raw same reads"], "op/s",
        ))  # fmt: skip
    figures.append(Figure(
        f"  its statement vs PK read through libpq, no Python ({small // 1000}k users)",
        libpq[0], libpq[1], "op/s",
    ))  # fmt: skip
    target = 1 / 1.3
    for name, key in (("write path x1", "store write x1"), ("write path x4", "store write x4"),
                      ("profile resolution", "store resolution")):  # fmt: skip
        figures.append(Figure(
            f"{name}: {large:,} vs {small:,} users", results[large][key], results[small][key],
            "ops/s", target,
        ))  # fmt: skip
    notes.append(
        f"profile resolution round trips: {trips} (Syncs and flushes counted; target at most 2: "
        + ("ok)" if trips <= 2 else "ABOVE)")
    )
    notes.append(
        "profile resolution = the store's reads, then resolve_profile (the core's merge of "
        "40 attributes); its store reads = one store transaction reading the current catalogs "
        "and the user's values of every layer (5 catalogs, 8 values: the user's 3 and their "
        "tenant's 5 defaults), sent as one statement (user_engine.profile_snapshot: scope, then "
        "the shared layers whose generation moved, none in steady state, and the user's own "
        "values) against the PK read's one row; 'raw same reads' = that statement by hand on "
        "an autocommit connection, no records built; floor = that statement by hand, the "
        "user's values made records and merged with the store's copies of the shared layers "
        "(no pool, no store transaction): the most any store on this statement could reach"
    )
    notes.append(
        "write path = one store transaction: profile value upsert + outbox event (with its "
        "per-aggregate lock) + audit record, under a scope; raw = the same three INSERTs in "
        "BEGIN..COMMIT as the superuser (no RLS)"
    )
    notes.append(
        "through libpq = pgbench (C client, prepared statements, 1 connection) sending "
        "user_engine.profile_snapshot for users of one tenant and the PK read, alternately: "
        "the part of the resolution's cost that is the server's and the protocol's"
    )
    notes.append("size figures: ratio = large/small rate; >= 0.77 means cost within 1.3x")
    report("postgres_bench", figures, notes)


if __name__ == "__main__":
    main()
