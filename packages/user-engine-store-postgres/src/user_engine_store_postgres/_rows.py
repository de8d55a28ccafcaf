"""Column lists and row <-> record conversion, one pair per record kind.

Rows are plain tuples in the column order of the ``*_COLUMNS`` constants (the fastest row
factory psycopg has); every SELECT and RETURNING of the store uses these constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from user_engine.domain import (
    Account,
    AccountStatus,
    Application,
    ApplicationBinding,
    AttributeDefinition,
    AuditOutcome,
    AuditRecord,
    CatalogVersion,
    EventStatus,
    ExternalIdentity,
    Factor,
    Layer,
    Membership,
    OutboxEvent,
    ProfileKey,
    ProfileValue,
    Tenant,
    TenantAccount,
    TenantAccountStatus,
    TenantStatus,
    User,
    UserStatus,
)

__all__ = [
    "ACCOUNT_COLUMNS",
    "APPLICATION_COLUMNS",
    "AUDIT_COLUMNS",
    "BINDING_COLUMNS",
    "EVENT_COLUMNS",
    "FACTOR_COLUMNS",
    "IDENTITY_COLUMNS",
    "MEMBERSHIP_COLUMNS",
    "PROFILE_COLUMNS",
    "PROFILE_PARTS_JSON",
    "TENANT_ACCOUNT_COLUMNS",
    "TENANT_COLUMNS",
    "USER_COLUMNS",
    "account",
    "application",
    "attributes_from_json",
    "attributes_to_json",
    "audit_record",
    "binding",
    "event",
    "factor",
    "identity",
    "membership",
    "profile_sort_key",
    "profile_value",
    "profile_values_from_parts",
    "profile_values_unsorted",
    "tenant",
    "tenant_account",
    "user",
    "with_audit_sequence",
    "with_version",
]

Row = Sequence[Any]

TENANT_COLUMNS = "id, name, status, created_at, version"
USER_COLUMNS = "id, display_name, status, created_at, updated_at, version"
ACCOUNT_COLUMNS = "id, user_id, handle, status, created_at, version"
TENANT_ACCOUNT_COLUMNS = "tenant_id, user_id, status, roles, created_at, updated_at, version"
MEMBERSHIP_COLUMNS = "tenant_id, user_id, group_name, created_at"
IDENTITY_COLUMNS = "issuer, subject, user_id, linked_at"
FACTOR_COLUMNS = "id, user_id, kind, label, secret_ref, created_at"
APPLICATION_COLUMNS = "id, name, created_at"
BINDING_COLUMNS = "application_id, tenant_id, user_id, granted_attributes, created_at"
PROFILE_COLUMNS = (
    "layer, application_id, attribute, tenant_id, user_id, value, version, catalog_version, "
    "written_by, written_at"
)
AUDIT_COLUMNS = (
    "sequence, id, occurred_at, tenant_id, actor_id, actor_kind, action, target_kind, "
    "target_id, outcome, reason_code, request_id, details"
)
EVENT_COLUMNS = (
    "id, event_type, aggregate_type, aggregate_id, tenant_id, occurred_at, payload, sequence, "
    "attempts, last_error, available_at, status"
)


def tenant(row: Row) -> Tenant:
    """A ``Tenant`` from a ``TENANT_COLUMNS`` row."""
    return Tenant(row[0], row[1], TenantStatus(row[2]), row[3], row[4])


def user(row: Row) -> User:
    """A ``User`` from a ``USER_COLUMNS`` row."""
    return User(row[0], row[1], UserStatus(row[2]), row[3], row[4], row[5])


def account(row: Row) -> Account:
    """An ``Account`` from an ``ACCOUNT_COLUMNS`` row."""
    return Account(row[0], row[1], row[2], AccountStatus(row[3]), row[4], row[5])


def tenant_account(row: Row) -> TenantAccount:
    """A ``TenantAccount`` from a ``TENANT_ACCOUNT_COLUMNS`` row."""
    return TenantAccount(
        row[0], row[1], TenantAccountStatus(row[2]), frozenset(row[3]), row[4], row[5], row[6]
    )


def membership(row: Row) -> Membership:
    """A ``Membership`` from a ``MEMBERSHIP_COLUMNS`` row."""
    return Membership(row[0], row[1], row[2], row[3])


def identity(row: Row) -> ExternalIdentity:
    """An ``ExternalIdentity`` from an ``IDENTITY_COLUMNS`` row."""
    return ExternalIdentity(row[0], row[1], row[2], row[3])


def factor(row: Row) -> Factor:
    """A ``Factor`` from a ``FACTOR_COLUMNS`` row."""
    return Factor(row[0], row[1], row[2], row[3], row[4], row[5])


def application(row: Row) -> Application:
    """An ``Application`` from an ``APPLICATION_COLUMNS`` row."""
    return Application(row[0], row[1], row[2])


def binding(row: Row) -> ApplicationBinding:
    """An ``ApplicationBinding`` from a ``BINDING_COLUMNS`` row."""
    return ApplicationBinding(row[0], row[1], row[2], frozenset(row[3]), row[4])


def profile_value(row: Row) -> ProfileValue:
    """A ``ProfileValue`` from a ``PROFILE_COLUMNS`` row."""
    key = ProfileKey(Layer(row[0]), row[1], row[2], row[3], row[4])
    return ProfileValue(key, row[5], row[6], row[7], row[8], row[9])


PROFILE_PARTS_JSON = (
    "json_agg(json_build_array(part, layer, application_id, attribute, value, version, "
    "catalog_version, written_by, written_at))"
)
"""Profile values as one JSON array, each row prefixed by its ``part``: which of the four
ranges of a resolution it came from, standing for its tenant and user id (read by
``profile_values_from_parts``). Migration 0003's ``profile_snapshot`` builds the same."""

_LAYERS = {layer.value: layer for layer in Layer}


def profile_values_from_parts(
    items: Sequence[Row] | None, user_id: str, tenant_id: str | None
) -> list[ProfileValue]:
    """``ProfileValue`` records from a ``PROFILE_PARTS_JSON`` array (NULL when no rows), in
    the reference store's order (``profile_sort_key``)."""
    values = profile_values_unsorted(items, user_id, tenant_id)
    values.sort(key=profile_sort_key)
    return values


def profile_values_unsorted(
    items: Sequence[Row] | None, user_id: str, tenant_id: str | None
) -> list[ProfileValue]:
    """``ProfileValue`` records from a ``PROFILE_PARTS_JSON`` array, in its order.

    Part 0 is the user's own values (no tenant), 1 the application defaults, 2 the user's
    values in the tenant, 3 the tenant's defaults: the part says the tenant and user id of a
    row exactly, so the JSON does not repeat them. One JSON value instead of a row per
    value: the driver's per-row and per-column work is most of a small read's cost. The
    stored JSON value is embedded as is (jsonb's own text), so it parses exactly as the
    jsonb column would; the timestamp is ISO 8601 text."""
    if not items:
        return []
    owners = ((None, user_id), (None, None), (tenant_id, user_id), (tenant_id, None))
    layers = _LAYERS
    parse = datetime.fromisoformat
    return [
        ProfileValue(
            ProfileKey(layers[i[1]], i[2], i[3], *owners[i[0]]), i[4], i[5], i[6], i[7],
            parse(i[8]),
        )
        for i in items
    ]  # fmt: skip


def profile_sort_key(value: ProfileValue) -> tuple[str, str, int, str, str]:
    """The reference store's order of ``profile_values_for`` results."""
    key = value.key
    return (key.application_id, key.attribute, key.layer.precedence, key.tenant_id or "",
            key.user_id or "")  # fmt: skip


def audit_record(row: Row) -> AuditRecord:
    """An ``AuditRecord`` from an ``AUDIT_COLUMNS`` row."""
    return AuditRecord(
        id=row[1],
        occurred_at=row[2],
        tenant_id=row[3],
        actor_id=row[4],
        actor_kind=row[5],
        action=row[6],
        target_kind=row[7],
        target_id=row[8],
        outcome=AuditOutcome(row[9]),
        reason_code=row[10],
        request_id=row[11],
        details=row[12],
        sequence=row[0],
    )


_EVENT_STATUSES = {status.value: status for status in EventStatus}


def event(row: Row) -> OutboxEvent:
    """An ``OutboxEvent`` from an ``EVENT_COLUMNS`` row (the columns in field order).

    Positional, and the status by a dict lookup (``EventStatus(...)`` is the slow path of an
    enum): a claim builds hundreds of these at a time."""
    status = _EVENT_STATUSES.get(row[11]) or EventStatus(row[11])
    return OutboxEvent(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
        status,
    )  # fmt: skip


# dataclasses.replace inspects the fields on every call; on the write path these direct
# constructions are several times cheaper.
def with_version(value: ProfileValue, version: int) -> ProfileValue:
    """``value`` as stored, with its new version."""
    return ProfileValue(
        value.key, value.value, version, value.catalog_version, value.written_by,
        value.written_at,
    )  # fmt: skip


def with_audit_sequence(record: AuditRecord, sequence: int) -> AuditRecord:
    """``record`` as appended, with its store-assigned sequence."""
    r = record
    return AuditRecord(
        r.id, r.occurred_at, r.tenant_id, r.actor_id, r.actor_kind, r.action, r.target_kind,
        r.target_id, r.outcome, r.reason_code, r.request_id, r.details, sequence,
    )  # fmt: skip


def attributes_to_json(catalog: CatalogVersion) -> list[dict[str, object]]:
    """The attribute definitions of a catalog as JSON-ready dicts."""
    return [definition.to_dict() for definition in catalog.attributes]


def attributes_from_json(data: list[dict[str, object]]) -> tuple[AttributeDefinition, ...]:
    """Attribute definitions from their stored JSON form."""
    return tuple(AttributeDefinition.from_dict(item) for item in data)
