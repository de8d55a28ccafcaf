"""The one typed error hierarchy of user-engine.

Every error carries a stable machine-readable ``code`` and a human message that says what was
wrong and what to do. Messages and details never contain secret values: callers pass only
names, ids and codes into them, never the value that was rejected.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AdapterError",
    "AuthorizationDenied",
    "ConfigurationError",
    "ConflictError",
    "NotFoundError",
    "NotReadyError",
    "PluginError",
    "StoreUnavailableError",
    "UserEngineError",
    "ValidationError",
]


class UserEngineError(Exception):
    """Base of every error user-engine raises on purpose.

    :param message: what was wrong and what to do about it (never a secret value).
    :param code: stable machine-readable code, for example ``validation.too_long``.
    :param details: small mapping of names and ids that locate the problem.
    """

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, str] = dict(details or {})

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready form: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": dict(self.details)}


class ValidationError(UserEngineError):
    """Input was malformed: wrong type, unknown attribute, oversize, bad id. Nothing changed."""

    default_code = "validation"


class NotFoundError(UserEngineError):
    """The record named does not exist (or is not visible to the caller's tenant)."""

    default_code = "not_found"


class ConflictError(UserEngineError):
    """The write conflicts with current state: duplicate, stale expected version, wrong status."""

    default_code = "conflict"


class AuthorizationDenied(UserEngineError):
    """The caller may not perform the operation. The denial itself is audited."""

    default_code = "denied"


class NotReadyError(UserEngineError):
    """The store is not ready: schema behind or ahead of the code, or unreachable."""

    default_code = "not_ready"


class StoreUnavailableError(UserEngineError):
    """The store could not be reached or failed in a way that is not the caller's fault."""

    default_code = "store.unavailable"


class AdapterError(UserEngineError):
    """An adapter (publisher, audit sink, secrets backend) failed; the message names it."""

    default_code = "adapter"


class ConfigurationError(UserEngineError):
    """The engine configuration is invalid or names an adapter that is not installed."""

    default_code = "configuration"


class PluginError(UserEngineError):
    """Plugin discovery found a problem: duplicate adapter name, unknown hook, bad factory."""

    default_code = "plugin"
