"""The default authorization policy: who may do what, and in which tenant.

The policy is pure: the service gathers the facts it needs (the target's tenant, user,
application, and relationship facts such as ``"member": "yes"``) and the policy decides.
"""

from __future__ import annotations

from typing import Final

from user_engine.domain import Principal, PrincipalKind
from user_engine.ports import AuthorizationTarget, Decision

__all__ = ["ACTIONS", "DefaultAuthorizationPolicy"]

ALLOW: Final = Decision(True, "allowed")

# Every action the service performs, with the principal kinds that may ever perform it.
# The operator may do everything; the finer rules (own tenant, self, bound application) follow.
ACTIONS: Final[dict[str, frozenset[PrincipalKind]]] = {}


def _allow(action: str, *kinds: PrincipalKind) -> None:
    ACTIONS[action] = frozenset({PrincipalKind.PLATFORM_OPERATOR, *kinds})


_U, _A, _T = PrincipalKind.USER, PrincipalKind.APPLICATION, PrincipalKind.TENANT_ADMIN
_allow("tenant.create")
_allow("tenant.suspend")
_allow("tenant.reactivate")
_allow("tenant.read", _T)
_allow("user.create", _T)
_allow("user.read", _U, _T)
_allow("user.suspend")
_allow("user.reactivate")
_allow("user.close", _U)
_allow("account.create", _U)
_allow("account.suspend")
_allow("account.reactivate")
_allow("account.close", _U)
_allow("tenant_account.add", _T)
_allow("tenant_account.suspend", _T)
_allow("tenant_account.reactivate", _T)
_allow("tenant_account.remove", _T)
_allow("tenant_account.assign_roles", _T)
_allow("tenant_account.list", _T)
_allow("membership.add", _T)
_allow("membership.remove", _T)
_allow("membership.list", _T)
_allow("membership.export", _T)
_allow("identity.link", _U, _A, _T)
_allow("identity.unlink", _U, _T)
_allow("identity.lookup", _A)
_allow("factor.enroll", _U)
_allow("factor.remove", _U)
_allow("application.register")
_allow("application.bind", _T)
_allow("application.unbind", _T)
_allow("catalog.publish", _A)
_allow("catalog.read", _A, _T, _U)
_allow("profile.write", _U, _A, _T)
_allow("profile.clear", _U, _A, _T)
_allow("profile.read", _U, _T)
_allow("profile.project", _A)
_allow("profile.verify_secret", _A)
_allow("audit.read", _T)
_allow("outbox.read")
_allow("diagnostics.read")
_allow("me", _U)

# Catalogs are platform metadata (attribute names, types and rules, never profile values):
# every kind listed for these actions may perform them, whatever the target.
_UNSCOPED: Final = frozenset({"catalog.read"})


class DefaultAuthorizationPolicy:
    """Role and tenant rules of user-engine (see docs/concepts.md, "Authorization").

    - platform operator: everything, every tenant;
    - tenant admin of T: the tenant-scoped actions it is listed for, only when the target's
      tenant is T (platform-level targets need ``"member": "yes"``: the user is in T);
    - user: only actions on itself (``target.user_id`` is its id);
    - application: only on itself, and on users bound to it (``"bound": "yes"``).
    """

    def decide(self, principal: Principal, action: str, target: AuthorizationTarget) -> Decision:
        """Decide; reason codes are stable (``denied.<why>``)."""
        allowed_kinds = ACTIONS.get(action)
        if allowed_kinds is None:
            return Decision(False, "denied.unknown_action")
        if principal.kind not in allowed_kinds:
            return Decision(False, "denied.role")
        if action in _UNSCOPED:
            return ALLOW
        facts = target.attributes
        match principal.kind:
            case PrincipalKind.PLATFORM_OPERATOR:
                return ALLOW
            case PrincipalKind.TENANT_ADMIN:
                if target.tenant_id is not None:
                    if target.tenant_id != principal.tenant_id:
                        return Decision(False, "denied.other_tenant")
                    if target.user_id is not None and facts.get("member") == "no":
                        return Decision(False, "denied.not_member")
                    return ALLOW
                if target.user_id is not None and facts.get("member") == "yes":
                    return ALLOW
                return Decision(False, "denied.platform_only")
            case PrincipalKind.USER:
                if target.user_id != principal.id:
                    return Decision(False, "denied.not_self")
                if target.tenant_id is not None and facts.get("member") != "yes":
                    return Decision(False, "denied.not_member")
                return ALLOW
            case PrincipalKind.APPLICATION:
                if target.application_id is not None and target.application_id != principal.id:
                    return Decision(False, "denied.other_application")
                if target.user_id is not None and facts.get("bound") != "yes":
                    return Decision(False, "denied.not_bound")
                return ALLOW
