"""Input limits and identifier rules. Documented in docs/concepts.md ("Limits")."""

from __future__ import annotations

import re
from typing import Final

from user_engine.errors import ValidationError

__all__ = [
    "MAX_ATTRIBUTES_PER_CATALOG",
    "MAX_DETAIL_LENGTH",
    "MAX_ENUM_CHOICES",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_PATTERN_LENGTH",
    "MAX_ROLES",
    "MAX_SECRET_BYTES",
    "MAX_STRING_VALUE_LENGTH",
    "MAX_SUBJECT_LENGTH",
    "check_attribute_name",
    "check_id",
    "check_name",
    "check_slug",
    "check_text",
]

MAX_ID_LENGTH: Final = 64
"""Longest id (tenant, user, application, factor ...)."""
MAX_NAME_LENGTH: Final = 200
"""Longest display name, account handle, group or role name."""
MAX_SUBJECT_LENGTH: Final = 255
"""Longest external identity issuer or subject."""
MAX_STRING_VALUE_LENGTH: Final = 4096
"""Longest string profile value, whatever the catalog says."""
MAX_PATTERN_LENGTH: Final = 256
"""Longest validation pattern in a catalog."""
MAX_ENUM_CHOICES: Final = 256
"""Most choices in an enum attribute."""
MAX_ATTRIBUTES_PER_CATALOG: Final = 256
"""Most attributes in one catalog version."""
MAX_ROLES: Final = 32
"""Most tenant roles on one tenant account."""
MAX_SECRET_BYTES: Final = 4096
"""Largest factor secret handed to the secrets port."""
MAX_PAGE_SIZE: Final = 1000
"""Largest page of audit records or outbox events returned at once."""
MAX_DETAIL_LENGTH: Final = 256
"""Longest audit detail or reason value."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_SLUG = re.compile(r"[a-z][a-z0-9-]{1,62}")
_ATTRIBUTE = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string, not {type(value).__name__}",
            code="validation.type",
            details={"field": field},
        )
    return value


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it is a well-formed id (ASCII letters, digits, ``_.:-``, <= 64)."""
    text = _require_str(value, field)
    if not _ID.fullmatch(text):
        raise ValidationError(
            f"{field} is not a valid id: use 1-64 ASCII letters, digits or '_.:-', "
            "starting with a letter or digit",
            code="validation.malformed_id",
            details={"field": field},
        )
    return text


def check_slug(value: object, field: str) -> str:
    """Return ``value`` if it is a lowercase slug: ``[a-z][a-z0-9-]{1,62}``."""
    text = _require_str(value, field)
    if not _SLUG.fullmatch(text):
        raise ValidationError(
            f"{field} must be a lowercase slug of 2-63 characters: a-z, 0-9 and '-', "
            "starting with a letter",
            code="validation.malformed_id",
            details={"field": field},
        )
    return text


def check_attribute_name(value: object, field: str = "attribute") -> str:
    """Return ``value`` if it is an attribute name: ``[a-z][a-z0-9_]{0,62}``."""
    text = _require_str(value, field)
    if not _ATTRIBUTE.fullmatch(text):
        raise ValidationError(
            f"{field} must match [a-z][a-z0-9_]* and be at most 63 characters",
            code="validation.malformed_name",
            details={"field": field},
        )
    return text


def check_text(value: object, field: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """Return ``value`` if it is printable text of 1..max_length characters."""
    text = _require_str(value, field)
    if not text or not text.strip():
        raise ValidationError(
            f"{field} must not be empty", code="validation.empty", details={"field": field}
        )
    if len(text) > max_length:
        raise ValidationError(
            f"{field} is longer than {max_length} characters",
            code="validation.too_long",
            details={"field": field},
        )
    if not text.isprintable():
        raise ValidationError(
            f"{field} contains control or unprintable characters",
            code="validation.unprintable",
            details={"field": field},
        )
    return text


def check_name(value: object, field: str) -> str:
    """Return ``value`` if it is a display name, handle, role or group name."""
    return check_text(value, field, max_length=MAX_NAME_LENGTH)
