"""Settings of the Kafka publisher: the ``[kafka]`` table of the engine configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from user_engine.errors import ConfigurationError

__all__ = ["DEFAULT_TOPIC", "PROTECTED_PRODUCER_KEYS", "KafkaSettings", "check_topic_name"]

DEFAULT_TOPIC: Final = "user-engine.events"
"""The topic every event goes to unless ``topic`` says otherwise."""

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PRODUCER_KEY = re.compile(r"[a-z][a-z0-9._]{0,99}")

PROTECTED_PRODUCER_KEYS: Final = frozenset(
    {
        # The delivery guarantees rest on these; see publisher.py for why each is fixed.
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "retries",
        "message.send.max.retries",
        "max.in.flight",
        "max.in.flight.requests.per.connection",
        "partitioner",
        "transactional.id",
        "message.max.bytes",
        # Given by their own settings.
        "bootstrap.servers",
        "metadata.broker.list",
    }
)
"""librdkafka properties the ``producer`` table may not set."""

_KNOWN = frozenset(
    {
        "bootstrap_servers",
        "topic",
        "topic_per_event_type",
        "message_timeout_ms",
        "source",
        "max_message_bytes",
        "producer",
    }
)


def _fail(message: str, setting: str) -> ConfigurationError:
    return ConfigurationError(
        f"kafka setting {setting}: {message}",
        code="configuration.invalid",
        details={"adapter": "kafka", "setting": setting},
    )


def check_topic_name(name: str, setting: str = "topic") -> str:
    """Return ``name`` if Kafka accepts it as a topic name; ``ConfigurationError`` otherwise."""
    if not isinstance(name, str) or not _TOPIC.fullmatch(name) or name in {".", ".."}:
        raise _fail("must be 1 to 249 characters of letters, digits, '.', '_' and '-'", setting)
    return name


def _integer(value: object, setting: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(f"must be an integer from {low} to {high}", setting)
    return value


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Validated settings of ``KafkaEventPublisher``.

    :param bootstrap_servers: ``host:port[,host:port...]`` of the Kafka cluster (required).
    :param topic: the topic of every event, or the prefix of per-type topics.
    :param topic_per_event_type: True sends each event to ``<topic>.<event type>``.
    :param message_timeout_ms: how long ``publish`` waits for the broker's acknowledgement
        before reporting an event failed (retriable). The message is not abandoned: it stays
        queued in the producer and may still be written, which is then a duplicate of the
        retry with the same event id, never a reordering.
    :param source: the CloudEvents ``source`` attribute (a URI-reference).
    :param max_message_bytes: largest encoded message (value, key and headers); a larger
        event fails for good (it is poison and will be dead-lettered).
    :param producer: extra librdkafka producer properties (``linger.ms``, ``client.id``,
        ``security.protocol`` ...), except ``PROTECTED_PRODUCER_KEYS``.
    """

    bootstrap_servers: str
    topic: str = DEFAULT_TOPIC
    topic_per_event_type: bool = False
    message_timeout_ms: int = 30_000
    source: str = "user-engine"
    max_message_bytes: int = 1_000_000
    producer: Mapping[str, str | int | float | bool] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> KafkaSettings:
        """Validate a settings table; ``ConfigurationError`` naming the bad or unknown keys.

        Secret producer properties (``sasl.password`` ...) are never echoed in errors.
        """
        if not isinstance(settings, Mapping):
            raise ConfigurationError("kafka settings must be a table", code="configuration.invalid")
        unknown = sorted(str(key) for key in settings if key not in _KNOWN)
        if unknown:
            raise ConfigurationError(
                "unknown kafka setting(s): "
                + ", ".join(repr(key[:64]) for key in unknown)
                + "; known: "
                + ", ".join(sorted(_KNOWN)),
                code="configuration.unknown_setting",
                details={"adapter": "kafka", "settings": ",".join(k[:64] for k in unknown)},
            )
        servers = settings.get("bootstrap_servers")
        if not isinstance(servers, str) or not servers.strip() or len(servers) > 4096:
            raise _fail("is required: host:port[,host:port...]", "bootstrap_servers")
        topic = check_topic_name(settings.get("topic", DEFAULT_TOPIC))
        per_type = settings.get("topic_per_event_type", False)
        if not isinstance(per_type, bool):
            raise _fail("must be true or false", "topic_per_event_type")
        source = settings.get("source", "user-engine")
        if not isinstance(source, str) or not source or len(source) > 1024:
            raise _fail("must be a non-empty URI-reference", "source")
        producer = settings.get("producer", {})
        if not isinstance(producer, Mapping):
            raise _fail("must be a table of librdkafka properties", "producer")
        extra: dict[str, str | int | float | bool] = {}
        for key, value in producer.items():
            if not isinstance(key, str) or not _PRODUCER_KEY.fullmatch(key):
                raise _fail("property names look like 'linger.ms'", "producer")
            if key in PROTECTED_PRODUCER_KEYS:
                raise _fail(
                    f"{key!r} may not be set: the delivery guarantees depend on it (or it "
                    "has its own setting)",
                    "producer",
                )
            if not isinstance(value, str | int | float | bool):
                raise _fail(f"{key!r} must be a string, number or boolean", "producer")
            extra[key] = value
        return cls(
            bootstrap_servers=servers.strip(),
            topic=topic,
            topic_per_event_type=per_type,
            message_timeout_ms=_integer(
                settings.get("message_timeout_ms", 30_000), "message_timeout_ms", 100, 3_600_000
            ),
            source=source,
            max_message_bytes=_integer(
                settings.get("max_message_bytes", 1_000_000),
                "max_message_bytes",
                1024,
                100_000_000,
            ),
            producer=MappingProxyType(extra),
        )

    def topic_for(self, event_type: str) -> str:
        """The topic an event of ``event_type`` goes to."""
        if self.topic_per_event_type:
            return f"{self.topic}.{event_type}"
        return self.topic
