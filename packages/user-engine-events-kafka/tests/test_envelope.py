"""The wire format: CloudEvents binary-mode headers and the versioned JSON envelope."""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.domain import OutboxEvent
from user_engine.errors import ValidationError
from user_engine_events_kafka import (
    ENVELOPE_VERSION,
    EventEncodingError,
    decode_message,
    encode_event,
)

EventFactory = Callable[..., OutboxEvent]

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def test_headers_carry_the_cloudevents_attributes_and_the_tenant(
    make_event: EventFactory,
) -> None:
    event = make_event("usr_9", event_type="user.suspended", tenant_id="acme")
    encoded = encode_event(event, source="urn:test")
    headers = dict(encoded.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == event.id.encode()
    assert headers["ce_type"] == b"user.suspended"
    assert headers["ce_source"] == b"urn:test"
    assert headers["ce_time"] == b"2026-01-01T00:00:00Z"
    assert headers["ce_subject"] == b"usr_9"
    assert headers["ce_tenantid"] == b"acme"
    assert headers["content-type"] == b"application/json"
    assert encoded.key == b"usr_9"


def test_a_platform_event_has_no_tenant_header(make_event: EventFactory) -> None:
    encoded = encode_event(make_event(tenant_id=None), source="s")
    assert "ce_tenantid" not in dict(encoded.headers)


def test_the_value_is_a_versioned_envelope_around_the_payload(make_event: EventFactory) -> None:
    event = make_event("usr_2", payload={"status": "suspended"}, sequence=41)
    envelope = json.loads(encode_event(event, source="s").value)
    assert envelope == {
        "envelope_version": ENVELOPE_VERSION,
        "id": event.id,
        "type": "user.updated",
        "aggregate_type": "user",
        "aggregate_id": "usr_2",
        "tenant_id": "acme",
        "occurred_at": "2026-01-01T00:00:00Z",
        "sequence": 41,
        "data": {"status": "suspended"},
    }


@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_decoding_an_encoded_event_gives_it_back(payload: dict[str, Any]) -> None:
    event = OutboxEvent(
        id="evt_1",
        event_type="t.x",
        aggregate_type="user",
        aggregate_id="usr_1",
        tenant_id=None,
        occurred_at=datetime(2026, 5, 1, 12, 30, tzinfo=UTC),
        payload=payload,
        sequence=3,
    )
    encoded = encode_event(event, source="src")
    received = decode_message(encoded.headers, encoded.value)
    assert received.id == "evt_1"
    assert received.type == "t.x"
    assert received.source == "src"
    assert received.time == event.occurred_at
    assert received.aggregate_id == "usr_1"
    assert received.tenant_id is None
    assert received.sequence == 3
    assert received.data == payload


@pytest.mark.parametrize(
    "payload", [{"when": datetime(2026, 1, 1)}, {"ratio": math.nan}, {"set": {1, 2}}]
)
def test_an_unserialisable_payload_is_an_encoding_error_without_its_value(
    make_event: EventFactory, payload: dict[str, Any]
) -> None:
    with pytest.raises(EventEncodingError) as raised:
        encode_event(make_event(payload=payload | {"canary": "CANARY-42"}), source="s")
    assert raised.value.code == "events.unserialisable"
    assert "CANARY" not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        (None, b"{}"),
        ([("ce_specversion", b"0.3")], b"{}"),
        ([("ce_specversion", b"1.0")], None),
        ([("ce_specversion", b"1.0")], b"not json"),
        ([("ce_specversion", b"1.0")], b"[1]"),
        ([("ce_specversion", b"1.0")], b'{"envelope_version": 99}'),
        ([("ce_specversion", b"1.0")], b'{"envelope_version": 1}'),
        ([("ce_specversion", b"\xff")], b"{}"),
    ],
)
def test_a_foreign_or_malformed_message_is_a_validation_error(
    headers: list[tuple[str, bytes]] | None, value: bytes | None
) -> None:
    with pytest.raises(ValidationError) as raised:
        decode_message(headers, value)
    assert raised.value.code == "events.malformed_message"


@given(st.binary(max_size=200), st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=12))))
def test_decoding_arbitrary_bytes_raises_only_validation_errors(
    value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    with contextlib.suppress(ValidationError):
        decode_message([("ce_specversion", b"1.0"), *headers], value)


_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_moments = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))


@given(
    ids=st.tuples(_texts, _texts, _texts, _texts),
    tenant=st.none() | _texts,
    moment=_moments | st.datetimes(),
    sequence=st.integers(min_value=0, max_value=2**63),
    payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_the_value_is_the_envelope_as_compact_json_byte_for_byte(
    ids: tuple[str, str, str, str],
    tenant: str | None,
    moment: datetime,
    sequence: int,
    payload: dict[str, Any],
) -> None:
    event_id, event_type, aggregate_type, aggregate_id = ids
    event = OutboxEvent(
        event_id, event_type, aggregate_type, aggregate_id, tenant, moment, payload, sequence
    )
    encoded = encode_event(event, source="src")
    time = dict(encoded.headers)["ce_time"].decode()
    envelope = {
        "envelope_version": ENVELOPE_VERSION,
        "id": event_id,
        "type": event_type,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "tenant_id": tenant,
        "occurred_at": time,
        "sequence": sequence,
        "data": payload,
    }
    expected = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert encoded.value == expected.encode()
    assert time.endswith("Z")
    assert datetime.fromisoformat(time) == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    assert encoded.size == len(encoded.key) + len(encoded.value) + sum(
        len(name) + len(value) for name, value in encoded.headers
    )


def test_a_failed_encoding_leaves_no_trace_for_the_next_one(make_event: EventFactory) -> None:
    shared: dict[str, Any] = {"k": 1}
    looped: dict[str, Any] = {"shared": shared}
    looped["self"] = looped
    with pytest.raises(EventEncodingError):
        encode_event(make_event(payload=looped), source="s")
    del looped["self"]  # no longer circular: the same objects must now encode
    encoded = encode_event(make_event(payload={"a": looped, "b": shared}), source="s")
    assert json.loads(encoded.value)["data"] == {"a": {"shared": {"k": 1}}, "b": {"k": 1}}


def test_fields_of_a_str_subclass_encode_as_their_text(make_event: EventFactory) -> None:
    class Kind(enum.StrEnum):
        SUSPENDED = "user.suspended"

    plain = make_event("usr_1", event_type="user.suspended")
    subclassed = replace(plain, event_type=Kind.SUSPENDED)
    assert encode_event(subclassed, source="s") == encode_event(plain, source="s")
