"""Migrations (advisory lock, checksums, dirty marker, version table) and readiness."""

from __future__ import annotations

import shutil
import threading
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from user_engine.errors import NotReadyError, StoreUnavailableError
from user_engine.migrations import LATEST_SCHEMA_VERSION, SCHEMA_VERSIONS
from user_engine_store_postgres import _migrator
from user_engine_store_postgres._migrator import apply_migrations, migration_files
from user_engine_store_postgres.hooks import create_store

REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture
def empty_database(postgres_database_factory: Any) -> Any:
    return postgres_database_factory(migrated=False)


@pytest.fixture
def edited_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the migrations the tests may edit, used instead of the shipped ones."""
    directory = tmp_path / "migrations"
    shutil.copytree(REPOSITORY / "migrations" / "postgres", directory)
    monkeypatch.setattr(_migrator, "_directory", lambda: directory)
    return directory


def _versions(dsn: str) -> list[tuple[int, bool]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT version, dirty FROM user_engine.schema_migrations ORDER BY version"
        ).fetchall()
    return [(int(v), bool(d)) for v, d in rows]


def test_there_is_one_migration_file_per_schema_version() -> None:
    files = migration_files()
    assert [f.version for f in files] == [v.number for v in SCHEMA_VERSIONS]


def test_four_concurrent_migrators_reach_the_latest_version_applying_each_file_once(
    empty_database: Any,
) -> None:
    barrier = threading.Barrier(4)
    results: list[object] = []

    def migrate() -> None:
        barrier.wait()
        try:
            results.append(apply_migrations(empty_database.owner_dsn))
        except Exception as error:  # collected and asserted below
            results.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [LATEST_SCHEMA_VERSION] * 4
    assert _versions(empty_database.admin_dsn) == [(v.number, False) for v in SCHEMA_VERSIONS]


def test_migrating_twice_changes_nothing(postgres_database: Any) -> None:
    before = _versions(postgres_database.admin_dsn)
    assert apply_migrations(postgres_database.owner_dsn) == LATEST_SCHEMA_VERSION
    assert _versions(postgres_database.admin_dsn) == before


def test_an_applied_migration_that_was_edited_is_refused(
    postgres_database: Any, edited_migrations: Path
) -> None:
    first = sorted(edited_migrations.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(NotReadyError) as raised:
        apply_migrations(postgres_database.owner_dsn)
    assert raised.value.code == "schema.checksum"
    store = create_store(postgres_database.settings)
    try:
        assert "schema.checksum" in store.readiness().problems
    finally:
        store.close()


def test_a_failing_migration_leaves_nothing_but_the_dirty_marker_until_migrated_again(
    empty_database: Any, edited_migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sorted(edited_migrations.glob("*.sql"))[0]
    original = first.read_text()
    first.write_text(original + "\nSELECT 1 / 0;\n")
    with pytest.raises(StoreUnavailableError) as raised:
        apply_migrations(empty_database.owner_dsn)
    assert raised.value.code == "schema.migration_failed"
    assert _versions(empty_database.admin_dsn) == [(1, True)]
    with psycopg.connect(empty_database.admin_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'user_engine'"
        ).fetchone()
    assert tables == (1,), "only the version table: the failed file was rolled back"
    store = create_store(empty_database.settings)
    try:
        assert store.readiness().problems[:1] == ("schema.dirty",)
        first.write_text(original)
        assert store.migrate() == LATEST_SCHEMA_VERSION
        assert store.readiness().ready
    finally:
        store.close()


def test_a_store_behind_is_not_ready_until_migrated(empty_database: Any) -> None:
    store = create_store(empty_database.settings)
    try:
        before = store.readiness()
        assert (before.ready, before.schema_version, before.problems) == (
            False, None, ("schema.behind",),
        )  # fmt: skip
        assert store.migrate() == LATEST_SCHEMA_VERSION
        after = store.readiness()
        assert (after.ready, after.schema_version, after.problems) == (
            True, LATEST_SCHEMA_VERSION, (),
        )  # fmt: skip
    finally:
        store.close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("INSERT INTO user_engine.schema_migrations VALUES (999, 'future', 'x', false)",
         "schema.ahead"),
        ("UPDATE user_engine.schema_migrations SET dirty = true", "schema.dirty"),
        ("UPDATE user_engine.schema_migrations SET checksum = 'edited'", "schema.checksum"),
        ("DELETE FROM user_engine.schema_migrations", "schema.behind"),
        ("ALTER TABLE user_engine.memberships NO FORCE ROW LEVEL SECURITY", "rls.missing"),
        ("ALTER TABLE user_engine.outbox_events DISABLE ROW LEVEL SECURITY", "rls.missing"),
        ("DROP POLICY tenants_scope ON user_engine.tenants", "rls.missing"),
    ],
)  # fmt: skip
def test_readiness_fails_closed_on_every_schema_problem(
    postgres_database: Any, change: str, problem: str
) -> None:
    with psycopg.connect(postgres_database.admin_dsn, autocommit=True) as conn:
        conn.execute(change)
    store = create_store(postgres_database.settings)
    try:
        readiness = store.readiness()
    finally:
        store.close()
    assert not readiness.ready
    assert problem in readiness.problems


def test_a_schema_ahead_of_the_code_is_refused_by_migrate(postgres_database: Any) -> None:
    with psycopg.connect(postgres_database.admin_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO user_engine.schema_migrations VALUES (999, 'f', 'x', false)")
    with pytest.raises(NotReadyError) as raised:
        apply_migrations(postgres_database.owner_dsn)
    assert raised.value.code == "schema.ahead"


def test_readiness_fails_closed_for_a_role_that_bypasses_row_level_security(
    postgres_database: Any,
) -> None:
    store = create_store({"dsn": postgres_database.admin_dsn})
    try:
        readiness = store.readiness()
    finally:
        store.close()
    assert not readiness.ready
    assert readiness.problems == ("rls.bypassed",)


def test_readiness_fails_closed_when_the_server_is_unreachable(postgres_database: Any) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(postgres_database.runtime_dsn)
    parts.update(port="1", connect_timeout="1")
    store = create_store({"dsn": make_conninfo(**parts), "pool_timeout": 1, "min_pool_size": 0})
    try:
        readiness = store.readiness()
    finally:
        store.close()
    assert (readiness.ready, readiness.problems) == (False, ("store.unreachable",))


def test_a_closed_store_is_not_ready(store: Any) -> None:
    store.close()
    assert store.readiness().problems == ("store.closed",)


def test_the_wheel_ships_the_migrations(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    package = str(REPOSITORY / "packages" / "user-engine-store-postgres")
    uv = Path(sys.executable).parent / "uv"
    uv_path = str(uv) if uv.exists() else shutil.which("uv")
    command = (
        [uv_path, "build", "--wheel", "--out-dir", str(tmp_path), package]
        if uv_path
        else [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), package]
    )
    subprocess.run(command, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    expected = {f"user_engine_store_postgres/migrations/{p.name}"
                for p in (REPOSITORY / "migrations" / "postgres").glob("*.sql")}  # fmt: skip
    assert expected
    assert expected <= set(names)
