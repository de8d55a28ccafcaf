"""Settings of the ``otel`` adapters, read from the engine configuration's ``[otel]`` table.

The audit sink and the telemetry adapter are both registered as ``otel``, so both receive the
same table: each accepts every key below and uses its own. Unknown keys are a
``ConfigurationError`` naming them. Values from the environment
(``USER_ENGINE_OTEL__TIMEOUT=2.5``) arrive as strings and are converted here. Error messages
name the setting, never its value (``headers`` usually carries a credential).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from user_engine.errors import ConfigurationError

from user_engine_audit_otel.mapping import (
    DEFAULT_MAX_ATTRIBUTE_LENGTH,
    DEFAULT_MAX_DETAILS,
    DetailPolicy,
)

__all__ = ["SETTING_NAMES", "DeliveryMode", "OtelSettings", "ProviderChoice", "parse_settings"]

ProviderChoice = Literal["auto", "global", "own"]
DeliveryMode = Literal["batch", "sync"]

SETTING_NAMES: Final = frozenset(
    {
        "provider",
        "delivery",
        "logger_provider",
        "tracer_provider",
        "meter_provider",
        "endpoint",
        "headers",
        "timeout",
        "max_queue_size",
        "max_export_batch_size",
        "schedule_delay",
        "service_name",
        "detail_keys",
        "max_details",
        "max_attribute_length",
        "tenant_in_metrics",
    }
)
"""Every key the ``[otel]`` table accepts."""

_DEFAULT_MAX_QUEUE_SIZE: Final = 2048
_URL: Final = re.compile(r"https?://[^\s/?#]+(/[^\s]*)?")
_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")


@dataclass(frozen=True, slots=True)
class OtelSettings:
    """Parsed settings (see ``docs/telemetry.md`` for each key).

    ``provider`` picks the log pipeline of the audit sink: ``auto`` uses the application's
    global ``LoggerProvider`` if it set one and otherwise builds one from the standard
    ``OTEL_*`` variables (OTLP/HTTP); ``global`` always uses the global one; ``own`` always
    builds one. An explicit ``logger_provider`` object overrides all three.

    ``delivery`` applies to the sink's own pipeline: ``batch`` (default) queues records and
    sends them from a background thread, so ``export`` never waits for the network;
    ``sync`` sends each batch before ``export`` returns, so its result is the delivery
    verdict itself (at the cost of a network round trip, bounded by ``timeout``, per export).
    """

    provider: ProviderChoice = "auto"
    delivery: DeliveryMode = "batch"
    logger_provider: Any = None
    tracer_provider: Any = None
    meter_provider: Any = None
    endpoint: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    max_queue_size: int = _DEFAULT_MAX_QUEUE_SIZE
    max_export_batch_size: int | None = None
    schedule_delay: float | None = None
    service_name: str | None = None
    detail_keys: frozenset[str] | None = None
    max_details: int = DEFAULT_MAX_DETAILS
    max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH
    tenant_in_metrics: bool = False

    @property
    def detail_policy(self) -> DetailPolicy:
        """The allow rule for audit details these settings describe."""
        return DetailPolicy(self.detail_keys, self.max_details)


def _invalid(key: str, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"otel setting {key!r} must be {expected}",
        code="configuration.invalid",
        details={"setting": key},
    )


def _integer(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(key, f"an integer from {low} to {high}")
    return value


def _seconds(key: str, value: object, high: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _invalid(key, f"a number of seconds above 0 and at most {high:g}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise _invalid(key, f"a number of seconds above 0 and at most {high:g}")
    return float(value)


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise _invalid(key, "true or false")
    return value


def _headers(value: object) -> dict[str, str]:
    # The OTEL_EXPORTER_OTLP_HEADERS form ("k=v,k2=v2") is accepted as well as a table.
    if isinstance(value, str):
        pairs: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            name, sep, text = item.partition("=")
            if not sep:
                raise _invalid("headers", "a table of header names to values, or 'k=v,k2=v2'")
            pairs[name.strip()] = text.strip()
        value = pairs
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and _HEADER_NAME.fullmatch(k) and isinstance(v, str) and "\n" not in v
        for k, v in value.items()
    ):
        raise _invalid("headers", "a table of header names to values, or 'k=v,k2=v2'")
    return dict(cast("Mapping[str, str]", value))


def _detail_keys(value: object) -> frozenset[str]:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple) or not all(
        isinstance(k, str) and DetailPolicy().allows(k) for k in value
    ):
        raise _invalid(
            "detail_keys",
            "a list of lower-case detail names that do not name values (see docs/telemetry.md)",
        )
    return frozenset(cast("list[str]", value))


def _env_queue_size(environ: Mapping[str, str]) -> int:
    text = environ.get("OTEL_BLRP_MAX_QUEUE_SIZE", "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return _DEFAULT_MAX_QUEUE_SIZE


def parse_settings(
    settings: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None
) -> OtelSettings:
    """Validate an ``[otel]`` settings table; ``ConfigurationError`` naming any bad key."""
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise ConfigurationError(
            "otel settings must be a table of settings", code="configuration.invalid"
        )
    unknown = sorted(str(key) for key in settings if key not in SETTING_NAMES)
    if unknown:
        raise ConfigurationError(
            "unknown otel setting(s): "
            + ", ".join(unknown)
            + "; known: "
            + ", ".join(sorted(SETTING_NAMES)),
            code="configuration.unknown_setting",
            details={"settings": ",".join(unknown)},
        )
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key == "provider":
            if value not in ("auto", "global", "own"):
                raise _invalid(key, "'auto', 'global' or 'own'")
            values[key] = value
        elif key == "delivery":
            if value not in ("batch", "sync"):
                raise _invalid(key, "'batch' or 'sync'")
            values[key] = value
        elif key in {"logger_provider", "tracer_provider", "meter_provider"}:
            values[key] = value
        elif key == "endpoint":
            if not isinstance(value, str) or not _URL.fullmatch(value):
                raise _invalid(key, "an http:// or https:// URL (the OTLP/HTTP logs endpoint)")
            values[key] = value
        elif key == "headers":
            values[key] = _headers(value)
        elif key == "timeout":
            values[key] = _seconds(key, value, 300.0)
        elif key == "schedule_delay":
            values[key] = _seconds(key, value, 3600.0)
        elif key in {"max_queue_size", "max_export_batch_size"}:
            values[key] = _integer(key, value, 1, 1_000_000)
        elif key == "service_name":
            if not isinstance(value, str) or not 0 < len(value) <= 256:
                raise _invalid(key, "a name of 1-256 characters")
            values[key] = value
        elif key == "detail_keys":
            values[key] = _detail_keys(value)
        elif key == "max_details":
            values[key] = _integer(key, value, 0, 64)
        elif key == "max_attribute_length":
            values[key] = _integer(key, value, 16, 4096)
        elif key == "tenant_in_metrics":
            values[key] = _boolean(key, value)
    values.setdefault("max_queue_size", _env_queue_size(env))
    batch = values.get("max_export_batch_size")
    if batch is not None and batch > values["max_queue_size"]:
        raise _invalid("max_export_batch_size", "at most max_queue_size")
    return OtelSettings(**values)
