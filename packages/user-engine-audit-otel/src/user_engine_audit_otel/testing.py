"""A local OTLP/HTTP logs receiver, for tests of this adapter and of applications using it.

``LocalOtlpReceiver`` listens on 127.0.0.1 (a free port unless one is given), decodes every
``ExportLogsServiceRequest`` it receives with ``opentelemetry-proto``, and keeps both the raw
request bodies (to scan for values that must never leave) and the decoded log records::

    with LocalOtlpReceiver() as receiver:
        sink = OtelAuditSink(settings=OtelSettings(endpoint=receiver.logs_endpoint))
        ...
        sink.flush(10)
        assert receiver.log_records()[0].event_name == "user_engine.audit.user.create"
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["LocalOtlpReceiver", "ReceivedLogRecord"]

_LOGS_PATH = "/v1/logs"
_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedLogRecord:
    """One log record as it arrived over OTLP."""

    event_name: str
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    trace_id: str
    span_id: str


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != _LOGS_PATH or not 0 <= length <= _MAX_BODY:
            self.send_error(404 if self.path != _LOGS_PATH else 413)
            return
        payload = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                payload = gzip.decompress(payload)
            elif encoding == "deflate":
                payload = zlib.decompress(payload)
            request = ExportLogsServiceRequest.FromString(payload)
        except Exception:  # protobuf's DecodeError, or a broken compressed body
            self.send_error(400)
            return
        self.server.owner._received(payload, request)
        body = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output should not carry a line per request."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: LocalOtlpReceiver) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class LocalOtlpReceiver:
    """An OTLP/HTTP logs endpoint on 127.0.0.1 (see the module docstring).

    :param port: the port to listen on; 0 (default) picks a free one. Restarting on the port
        of a stopped receiver brings "the collector" back at the same address.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._condition = threading.Condition()
        self.bodies: list[bytes] = []
        self._records: list[ReceivedLogRecord] = []
        self.port = port

    @property
    def logs_endpoint(self) -> str:
        """The full OTLP/HTTP logs URL (``http://127.0.0.1:<port>/v1/logs``)."""
        return f"http://127.0.0.1:{self.port}{_LOGS_PATH}"

    def start(self) -> LocalOtlpReceiver:
        """Start listening (in a background thread)."""
        self._server = _Server(("127.0.0.1", self._requested_port or self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is free afterwards). Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LocalOtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _received(self, payload: bytes, request: ExportLogsServiceRequest) -> None:
        records = []
        for resource_logs in request.resource_logs:
            resource = {a.key: _value(a.value) for a in resource_logs.resource.attributes}
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    records.append(
                        ReceivedLogRecord(
                            event_name=record.event_name,
                            time_unix_nano=record.time_unix_nano,
                            observed_time_unix_nano=record.observed_time_unix_nano,
                            severity_number=int(record.severity_number),
                            severity_text=record.severity_text,
                            body=_value(record.body),
                            attributes={a.key: _value(a.value) for a in record.attributes},
                            resource=resource,
                            scope_name=scope_logs.scope.name,
                            trace_id=record.trace_id.hex(),
                            span_id=record.span_id.hex(),
                        )
                    )
        with self._condition:
            self.bodies.append(payload)
            self._records.extend(records)
            self._condition.notify_all()

    def log_records(self) -> list[ReceivedLogRecord]:
        """Every log record received so far, in arrival order."""
        with self._condition:
            return list(self._records)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedLogRecord]:
        """Wait until at least ``count`` records arrived (or ``timeout`` passed); return all."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._records) >= count, timeout)
            return list(self._records)
