"""The wire format: CloudEvents binary-mode headers and a versioned JSON envelope.

A message's key is the aggregate id (UTF-8), so every event of one aggregate lands in one
partition, in order. Its headers carry the CloudEvents attributes (``ce_specversion``,
``ce_id``, ``ce_type``, ``ce_source``, ``ce_time``, ``ce_subject``, the extensions
``ce_tenantid`` and ``ce_aggregatetype``, and ``content-type``) so consumers can route and
drop duplicates without parsing the value. The value is the JSON envelope::

    {"envelope_version": 1, "id": "evt_...", "type": "user.suspended",
     "aggregate_type": "user", "aggregate_id": "usr_...", "tenant_id": null,
     "occurred_at": "2026-01-01T00:00:00Z", "sequence": 42, "data": {...}}

``envelope_version`` changes only when a field changes meaning or disappears; new fields
may be added within a version, so consumers ignore fields they do not know.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from user_engine.domain import OutboxEvent
from user_engine.errors import ValidationError

__all__ = [
    "CONTENT_TYPE",
    "ENVELOPE_VERSION",
    "SPEC_VERSION",
    "EncodedEvent",
    "EventEncodingError",
    "ReceivedEvent",
    "decode_message",
    "encode_event",
]

ENVELOPE_VERSION: Final = 1
"""Version of the JSON envelope in the message value."""
SPEC_VERSION: Final = "1.0"
"""The CloudEvents specification version of the headers."""
CONTENT_TYPE: Final = "application/json"
"""The ``content-type`` header of every message."""

Headers = list[tuple[str, bytes]]
HeaderValue = bytes | str | None


class EventEncodingError(ValidationError):
    """An event cannot be encoded (its payload is not JSON). Retrying cannot help."""

    default_code = "events.unserialisable"


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """One event as a Kafka message: key, value, headers, and their size in bytes (key,
    value, header names and values: what counts towards the message size limit)."""

    key: bytes
    value: bytes
    headers: Headers
    size: int


_SPEC = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT = ("content-type", CONTENT_TYPE.encode())
# Header names and constant values, counted once: the size of every message includes them.
_FIXED_HEADER_BYTES = sum(len(n) + len(v) for n, v in (_SPEC, _CONTENT)) + sum(
    map(len, ("ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_aggregatetype"))
)
_TENANT_HEADER = "ce_tenantid"


def _timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as CloudEvents ``time`` asks."""
    if moment.tzinfo is UTC:  # the usual case: isoformat ends in +00:00
        return moment.isoformat()[:-6] + "Z"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset():
        moment = moment.astimezone(UTC)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def encode_event(event: OutboxEvent, *, source: str) -> EncodedEvent:
    """Encode ``event``; ``EventEncodingError`` if its payload is not JSON-serialisable.

    The error names the event and the kind of problem only, never a payload value.
    """
    time = _timestamp(event.occurred_at)
    event_id = event.id
    event_type = event.event_type
    aggregate_type = event.aggregate_type
    aggregate_id = event.aggregate_id
    tenant_id = event.tenant_id
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and most consumers reject them.
        value = _envelope(event, time).encode()
    except (TypeError, ValueError, RecursionError) as error:
        raise EventEncodingError(
            f"the payload of event {event_id} is not JSON-serialisable "
            f"({type(error).__name__}); it cannot be published",
            details={"event_id": event_id},
        ) from None
    key = aggregate_id.encode()
    id_bytes = event_id.encode()
    type_bytes = event_type.encode()
    source_bytes = source.encode()
    time_bytes = time.encode()
    aggregate_type_bytes = aggregate_type.encode()
    headers: Headers = [
        _SPEC,
        ("ce_id", id_bytes),
        ("ce_type", type_bytes),
        ("ce_source", source_bytes),
        ("ce_time", time_bytes),
        ("ce_subject", key),
        ("ce_aggregatetype", aggregate_type_bytes),
        _CONTENT,
    ]
    # key, value, header names and values (ce_subject repeats the key)
    size = (
        _FIXED_HEADER_BYTES
        + 2 * len(key)
        + len(value)
        + len(id_bytes)
        + len(type_bytes)
        + len(source_bytes)
        + len(time_bytes)
        + len(aggregate_type_bytes)
    )
    if tenant_id is not None:
        tenant_bytes = tenant_id.encode()
        headers.append((_TENANT_HEADER, tenant_bytes))
        size += len(_TENANT_HEADER) + len(tenant_bytes)
    return EncodedEvent(key, value, headers, size)


def _envelope(event: OutboxEvent, time: str) -> str:
    """The envelope's JSON text: what ``_ENCODER`` makes of the envelope dict, built
    directly from its parts when they have the declared types (the common case)."""
    event_id = event.id
    event_type = event.event_type
    aggregate_type = event.aggregate_type
    aggregate_id = event.aggregate_id
    tenant_id = event.tenant_id
    sequence = event.sequence
    if (
        type(event_id) is str
        and type(event_type) is str
        and type(aggregate_type) is str
        and type(aggregate_id) is str
        and (tenant_id is None or type(tenant_id) is str)
        and type(sequence) is int
    ):
        return "".join(
            (
                _ENVELOPE_START,
                _string(event_id),
                ',"type":',
                _string(event_type),
                ',"aggregate_type":',
                _string(aggregate_type),
                ',"aggregate_id":',
                _string(aggregate_id),
                ',"tenant_id":',
                "null" if tenant_id is None else _string(tenant_id),
                ',"occurred_at":',
                _string(time),
                ',"sequence":',
                int.__repr__(sequence),
                ',"data":',
                _encode_json(event.payload),
                "}",
            )
        )
    envelope = {
        "envelope_version": ENVELOPE_VERSION,
        "id": event_id,
        "type": event_type,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "tenant_id": tenant_id,
        "occurred_at": time,
        "sequence": sequence,
        "data": event.payload,
    }
    return _ENCODER.encode(envelope)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ENVELOPE_START = '{"envelope_version":' + json.dumps(ENVELOPE_VERSION) + ',"id":'
_string: Callable[[str], str] = json.encoder.encode_basestring


class _ThreadEncoder(threading.local):
    """``_ENCODER``'s C encoder, made once per thread instead of once per call (as
    ``JSONEncoder.encode`` does). Its ``markers`` (the circular-reference check) must be
    private to the thread and emptied after a failure."""

    def __init__(self) -> None:
        self.markers: dict[int, Any] = {}
        make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
        self.encode: Callable[[Any, int], list[str]] | None = None
        if make is not None:
            e = _ENCODER
            self.encode = make(
                self.markers, e.default, _string, e.indent, e.key_separator,
                e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan,
            )  # fmt: skip


_THREAD_ENCODER = _ThreadEncoder()


def _encode_json(value: Any) -> str:
    """``_ENCODER.encode(value)``, faster."""
    local = _THREAD_ENCODER
    encode = local.encode
    if encode is None:
        return _ENCODER.encode(value)
    try:
        return "".join(encode(value, 0))
    except BaseException:
        local.markers.clear()
        raise


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event read back from a message (for consumers)."""

    id: str
    type: str
    source: str
    time: datetime
    aggregate_type: str
    aggregate_id: str
    tenant_id: str | None
    sequence: int
    data: Mapping[str, Any]
    envelope_version: int


def _malformed(what: str) -> ValidationError:
    return ValidationError(
        f"not a user-engine event message: {what}", code="events.malformed_message"
    )


def decode_message(
    headers: Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None,
    value: bytes | str | None,
) -> ReceivedEvent:
    """Read an event from a message's headers and value (``msg.headers()``, ``msg.value()``).

    Raises ``ValidationError`` (code ``events.malformed_message``) if the message is not one
    of ours or uses an envelope version this library does not know.
    """
    found: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, raw in pairs:
        if isinstance(raw, bytes):
            try:
                found[name] = raw.decode()
            except UnicodeDecodeError:
                raise _malformed(f"header {name[:40]!r} is not UTF-8") from None
        elif isinstance(raw, str):
            found[name] = raw
    if found.get("ce_specversion") != SPEC_VERSION:
        raise _malformed("no ce_specversion 1.0 header")
    if value is None:
        raise _malformed("no value")
    try:
        envelope = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the value is not JSON") from None
    if not isinstance(envelope, dict):
        raise _malformed("the value is not a JSON object")
    version = envelope.get("envelope_version")
    if version != ENVELOPE_VERSION:
        raise _malformed(f"unknown envelope_version {str(version)[:20]!r}")
    try:
        event_id = found["ce_id"]
        if envelope["id"] != event_id:
            raise _malformed("ce_id and the envelope id differ")
        data = envelope["data"]
        time = datetime.fromisoformat(found["ce_time"])
        sequence = envelope["sequence"]
        if not isinstance(data, dict) or not isinstance(sequence, int):
            raise _malformed("data must be an object and sequence an integer")
        tenant = envelope.get("tenant_id")
        return ReceivedEvent(
            id=event_id,
            type=found["ce_type"],
            source=found["ce_source"],
            time=time,
            aggregate_type=str(envelope["aggregate_type"]),
            aggregate_id=str(envelope["aggregate_id"]),
            tenant_id=None if tenant is None else str(tenant),
            sequence=sequence,
            data=data,
            envelope_version=version,
        )
    except KeyError as missing:
        raise _malformed(f"missing {str(missing)[:40]}") from None
    except ValueError:
        raise _malformed("ce_time is not an RFC 3339 time") from None
