"""Registration of the Kafka publisher through the ``user_engine`` entry point."""

from __future__ import annotations

from user_engine.hookspecs import Register, hookimpl

from user_engine_events_kafka.publisher import create_publisher


@hookimpl
def user_engine_register_event_publishers(register: Register) -> None:
    """Register ``kafka``."""
    register("kafka", create_publisher)
