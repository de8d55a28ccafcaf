"""user-engine-events-kafka: the ``kafka`` event publisher for user-engine.

Publishes outbox events with an idempotent producer, keyed by aggregate id, with CloudEvents
binary-mode headers and a versioned JSON envelope. Also: a consumer-side ``Deduplicator``,
``decode_message`` for consumers, and ``LocalBroker`` for development and tests.
"""

from user_engine_events_kafka.consumer import Deduplicator
from user_engine_events_kafka.envelope import (
    ENVELOPE_VERSION,
    EncodedEvent,
    EventEncodingError,
    ReceivedEvent,
    decode_message,
    encode_event,
)
from user_engine_events_kafka.local_broker import LocalBroker
from user_engine_events_kafka.publisher import KafkaEventPublisher, create_publisher
from user_engine_events_kafka.settings import KafkaSettings

__all__ = [
    "ENVELOPE_VERSION",
    "Deduplicator",
    "EncodedEvent",
    "EventEncodingError",
    "KafkaEventPublisher",
    "KafkaSettings",
    "LocalBroker",
    "ReceivedEvent",
    "create_publisher",
    "decode_message",
    "encode_event",
]
