"""``UserEngineService``: the headless API of user-engine.

Every public operation takes the caller (a ``Principal``) first, validates its input before
touching state (``ValidationError``, nothing changed), resolves the tenant context, asks the
authorization policy, and runs in one store transaction that commits the domain change, its
audit record and its outbox event together.

- A denial is appended to the audit log *autonomously* (it survives any enclosing rollback),
  exported at once, emits no event, and raises ``AuthorizationDenied``.
- A mutation that fails on a conflict is audited the same way with outcome ``failed``.
- Reads are audited only when denied: auditing every read would turn each read into a write.
- ``transaction()`` groups several operations into one all-or-nothing unit; operations inside
  it run in savepoints, so a failed operation rolls back only its own part.
- Audit records are exported to the audit sink only after their transaction commits.
"""

from __future__ import annotations

from user_engine.service._applications import ApplicationOperations
from user_engine.service._inspection import InspectionOperations
from user_engine.service._profiles import ProfileOperations
from user_engine.service._tenants import TenantOperations
from user_engine.service._users import UserOperations
from user_engine.service._views import REDACTED, Diagnostics, MeView

__all__ = ["REDACTED", "Diagnostics", "MeView", "UserEngineService"]


class UserEngineService(
    InspectionOperations,
    TenantOperations,
    UserOperations,
    ApplicationOperations,
    ProfileOperations,
):
    """The headless API. Thread-safe when its store and ports are.

    :param store: the ``UserEngineStore`` holding every record.
    :param audit_sink: where committed audit records are exported (optional).
    :param clock: time source (UTC); ``ids``: id source; ``secrets``: factor secrets.
    :param verifier: checks identity evidence when linking (default: caller vouches).
    :param policy: authorization policy (default: ``DefaultAuthorizationPolicy``).
    :param membership_exporter: receives ``export_memberships`` (optional).
    :param telemetry: spans and metrics (default: none).
    """
