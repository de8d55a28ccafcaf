"""Store clause ``store.model.equivalence``: a stateful, model-based comparison.

A hypothesis ``RuleBasedStateMachine`` drives random sequences of *service* operations
(``UserEngineService``) on two engines at once: one over the adapter under test, one over the
reference ``MemoryStore``. Both get identical deterministic ports (``FixedClock``,
``SequentialIds``, ``InMemorySecretStore``), so every observable result must be identical:
return values, errors and their codes, the audit log, the exported audit records and the
outbox (relay claims, acks and releases included).

The adapter's store is shared by every example of one test (and maybe by other tests): each
example works in its own namespace (ids, tenants, handles, subjects carry it) and compares
only rows of that namespace, so rows left by earlier examples never count.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Final

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from user_engine.domain import (
    AttributeDefinition,
    AttributeType,
    AuditFilter,
    AuditOutcome,
    AuditPage,
    AuditRecord,
    ClaimedEvent,
    EffectiveProfile,
    Layer,
    OutboxEvent,
    Principal,
    RetryPolicy,
    Sensitivity,
    WriterRole,
)
from user_engine.errors import UserEngineError
from user_engine.inprocess import InProcessAuditSink
from user_engine.plugins import PluginHost
from user_engine.ports import UserEngineStore
from user_engine.service import MeView, UserEngineService
from user_engine.testing import FixedClock, InMemorySecretStore, SequentialIds
from user_engine_store_memory import MemoryStore

from user_engine_conformance._samples import PLATFORM
from user_engine_conformance._store_outbox import drain_outbox
from user_engine_conformance.clauses import clause
from user_engine_conformance.plugin import MODEL_EXAMPLES_OPTION

__all__ = ["ModelClauses"]

_WRITERS: Final = frozenset(WriterRole)
_ALL_LAYERS: Final = frozenset(
    {Layer.USER, Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT, Layer.APPLICATION_DEFAULT}
)
_CATALOGS: Final[tuple[tuple[AttributeDefinition, ...], ...]] = (
    (
        AttributeDefinition(
            "nickname",
            AttributeType.STRING,
            Sensitivity.PERSONAL,
            _WRITERS,
            _ALL_LAYERS,
            max_length=8,
        ),
        AttributeDefinition(
            "seats",
            AttributeType.INTEGER,
            Sensitivity.INTERNAL,
            frozenset({WriterRole.APPLICATION, WriterRole.TENANT_ADMIN}),
            frozenset({Layer.TENANT_DEFAULT, Layer.APPLICATION_DEFAULT}),
            minimum=0,
            maximum=10,
            default=1,
        ),
        AttributeDefinition(
            "pin",
            AttributeType.STRING,
            Sensitivity.SECRET,
            frozenset({WriterRole.SELF}),
            frozenset({Layer.USER}),
        ),
    ),
    (
        AttributeDefinition(
            "nickname", AttributeType.STRING, Sensitivity.PUBLIC, _WRITERS, _ALL_LAYERS
        ),
        AttributeDefinition(
            "beta",
            AttributeType.BOOLEAN,
            Sensitivity.INTERNAL,
            _WRITERS,
            frozenset({Layer.USER, Layer.TENANT_DEFAULT}),
            default=False,
        ),
    ),
)
_POLICY: Final = RetryPolicy(
    max_attempts=2, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=1), jitter=0.0
)

# Weighted towards callers who may act, so sequences build state instead of being denied.
_PRINCIPALS = st.sampled_from(
    ["operator"] * 6 + ["self"] * 2 + ["admin", "stranger", "application"]
)
_SLOT = st.integers(min_value=0, max_value=3)
# Weighted towards writes that can succeed (short text, the common attribute and layer), so
# versions grow and expected-version checks matter; the rest exercises the refusals.
_TEXT = st.text(alphabet="aZ é🚀", max_size=6)
_VALUES = st.one_of(_TEXT, _TEXT, _TEXT, st.integers(-2, 12), st.booleans(), st.none())
_EXPECTED = st.sampled_from([None, 0, 1, 1, 2])
_PROFILE_ATTRIBUTES = st.sampled_from(["nickname"] * 4 + ["seats", "pin", "beta", "unknown"])
_LAYERS = st.sampled_from([Layer.USER] * 3 + list(Layer))


class _NamespacedIds:
    """``SequentialIds`` whose ids carry the example's namespace."""

    def __init__(self, namespace: str) -> None:
        self._ids = SequentialIds()
        self._namespace = namespace

    def new_id(self, prefix: str) -> str:
        return self._ids.new_id(f"{prefix}{self._namespace}_")


@dataclasses.dataclass(slots=True)
class _Side:
    """One engine: the service over a store, and what has been compared of it so far."""

    service: UserEngineService
    store: UserEngineStore
    clock: FixedClock
    sink: InProcessAuditSink
    audit_after: int = 0
    exported_seen: int = 0


def _side(store: UserEngineStore, namespace: str) -> _Side:
    clock = FixedClock()
    sink = InProcessAuditSink()
    service = UserEngineService(
        store=store,
        clock=clock,
        ids=_NamespacedIds(namespace),
        secrets=InMemorySecretStore(),
        audit_sink=sink,
    )
    return _Side(service, store, clock, sink)


_AUDIT_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(AuditRecord) if f.name != "sequence"
)
_EVENT_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(OutboxEvent) if f.name != "sequence"
)


def _without_sequence(row: AuditRecord | OutboxEvent) -> tuple[object, ...]:
    """The row's fields but its store-assigned sequence (which differs between stores)."""
    names = _AUDIT_FIELDS if isinstance(row, AuditRecord) else _EVENT_FIELDS
    return (type(row).__name__, *(getattr(row, name) for name in names))


def _relay_state(event: OutboxEvent) -> tuple[object, ...]:
    """What the relay changes about an event."""
    return (event.id, event.attempts, event.last_error, event.available_at, event.status)


class _Rollback(Exception):
    """Rolls back a grouped ``transaction()`` on purpose."""


def _model_machine(new_store: Callable[[], UserEngineStore]) -> type[RuleBasedStateMachine]:
    """The state machine class; ``new_store`` builds the adapter's store for one example."""

    class ServiceModel(RuleBasedStateMachine):
        """Random service operations, on the adapter and on the reference, compared."""

        def __init__(self) -> None:
            super().__init__()
            self.ns = uuid.uuid4().hex[:10]
            adapter_store = new_store()
            adapter_store.migrate()
            drain_outbox(adapter_store)
            reference_store = MemoryStore()
            reference_store.migrate()
            self.reference = _side(reference_store, self.ns)
            self.subject = _side(adapter_store, self.ns)
            self.subject.audit_after = _audit_high_water(adapter_store)
            self.users: list[str] = []
            self.accounts: list[str] = []
            self.factors: list[str] = []
            self.compared_events: set[str] = set()
            self.operator = Principal.platform_operator(f"op-{self.ns}")
            self.admin = Principal.tenant_admin(f"adm-{self.ns}", self.tenant(0))

        def teardown(self) -> None:
            self.reference.store.close()
            self.subject.store.close()

        # -- names in this example's namespace ----------------------------------------------
        def tenant(self, slot: int) -> str:
            return f"t-{self.ns}-{slot % 3}"

        def application(self, slot: int) -> str:
            return f"a-{self.ns}-{slot % 2}"

        def user(self, slot: int) -> str:
            return self.users[slot] if slot < len(self.users) else f"usr_{self.ns}_none{slot}"

        def principal(self, kind: str, user_id: str) -> Principal:
            if kind == "operator":
                return self.operator
            if kind == "admin":
                return self.admin
            if kind == "application":
                return Principal.application(self.application(0))
            if kind == "stranger":
                return Principal.user(self.users[-1] if self.users else f"usr_{self.ns}_x")
            return Principal.user(user_id)

        # -- running one operation on both engines -------------------------------------------
        def both(self, operation: str, call: Callable[[UserEngineService], Any]) -> Any:
            expected = self._outcome(call, self.reference.service)
            actual = self._outcome(call, self.subject.service)
            assert actual == expected, (
                f"{operation}: the adapter gave {actual!r}, the reference store {expected!r}"
            )
            return expected[1] if expected[0] == "ok" else None

        def _outcome(
            self, call: Callable[[UserEngineService], Any], service: UserEngineService
        ) -> tuple[str, Any]:
            try:
                return ("ok", self._normalized(call(service)))
            except UserEngineError as error:
                return ("error", f"{type(error).__name__}[{error.code}]")
            except _Rollback:
                return ("error", "rolled back")

        def _normalized(self, value: Any) -> Any:
            """Sequences differ between stores and foreign rows may share the adapter's
            store: drop the one, filter the other."""
            if isinstance(value, AuditRecord | OutboxEvent):
                return _without_sequence(value)
            if isinstance(value, AuditPage):
                return (self._normalized(value.records), value.next_after is None)
            if isinstance(value, EffectiveProfile):
                mine = {k: v for k, v in value.attributes.items() if self.ns in k}
                return dataclasses.replace(value, attributes=mine)
            if isinstance(value, MeView):
                return dataclasses.replace(value, profile=self._normalized(value.profile))
            if isinstance(value, list | tuple):
                return [self._normalized(item) for item in value]
            return value

        # -- invariants: the whole observable state ------------------------------------------
        @invariant()
        def the_audit_logs_match(self) -> None:
            expected = self._new_audit(self.reference)
            actual = self._new_audit(self.subject)
            assert actual == expected, "the audit logs differ (sequence numbers aside)"
            expected_exports = self._new_exports(self.reference)
            assert self._new_exports(self.subject) == expected_exports, (
                "the exported audit records differ"
            )

        @invariant()
        def the_outboxes_match(self) -> None:
            for listing in ("pending_events", "dead_letters"):
                expected = self._events(self.reference, listing)
                actual = self._events(self.subject, listing)
                assert [_relay_state(e) for e in actual] == [_relay_state(e) for e in expected], (
                    f"the outboxes differ ({listing})"
                )
                # An event's content never changes: compare it in full once, when it appears.
                for mine, theirs in zip(actual, expected, strict=True):
                    if mine.id not in self.compared_events:
                        assert _without_sequence(mine) == _without_sequence(theirs), (
                            f"outbox event {mine.id} differs"
                        )
                        self.compared_events.add(mine.id)

        def _new_audit(self, side: _Side) -> list[tuple[object, ...]]:
            found: list[AuditRecord] = []
            while True:
                page = side.store.read_audit(
                    AuditFilter(after_sequence=side.audit_after, limit=500), PLATFORM
                )
                found += [r for r in page.records if self.ns in r.id]
                if page.records:
                    side.audit_after = page.records[-1].sequence
                if page.next_after is None:
                    return [_without_sequence(r) for r in found]

        def _new_exports(self, side: _Side) -> list[tuple[object, ...]]:
            exported = side.sink.exported[side.exported_seen :]
            side.exported_seen += len(exported)
            return [_without_sequence(r) for r in exported]

        def _events(self, side: _Side, listing: str) -> list[OutboxEvent]:
            events: list[OutboxEvent] = getattr(side.store, listing)(limit=1000)
            return [e for e in events if self.ns in e.id]

        def _tenant_and_application(self, slot: int) -> None:
            tenant, app, operator = self.tenant(slot), self.application(slot), self.operator
            self.both("create_tenant", lambda s: s.create_tenant(operator, tenant, name="T"))
            self.both(
                "register_application", lambda s: s.register_application(operator, app, name="A")
            )
            self.both(
                "publish_catalog", lambda s: s.publish_catalog(operator, app, list(_CATALOGS[0]))
            )

        def _user(self, tenant_id: str | None, roles: tuple[str, ...]) -> None:
            user = self.both(
                "create_user",
                lambda s: s.create_user(
                    self.operator, display_name="Zoë", tenant_id=tenant_id, roles=roles
                ),
            )
            self.users.append(user.id)

        # -- rules ---------------------------------------------------------------------------
        @initialize()
        def a_small_world(self) -> None:
            """Two tenants, two applications with catalogs, three users, one binding."""
            operator = self.operator
            for slot in (0, 1):
                self._tenant_and_application(slot)
            for tenant_id, roles in (
                (self.tenant(0), ("admin",)),
                (self.tenant(0), ()),
                (None, ()),
            ):
                self._user(tenant_id, roles)
            self.both(
                "add_to_tenant", lambda s: s.add_to_tenant(operator, self.tenant(1), self.users[0])
            )
            self.both(
                "bind_application",
                lambda s: s.bind_application(
                    operator,
                    self.application(0),
                    tenant_id=self.tenant(0),
                    user_id=self.users[0],
                    granted_attributes=[f"{self.application(1)}.nickname"],
                ),
            )

        @rule(seconds=st.sampled_from([1, 5, 30, 120]))
        def time_passes(self, seconds: int) -> None:
            for side in (self.reference, self.subject):
                side.clock.advance(timedelta(seconds=seconds))

        @rule(slot=_SLOT, who=_PRINCIPALS)
        def create_tenant(self, slot: int, who: str) -> None:
            principal = self.principal(who, self.user(0))
            self.both(
                "create_tenant",
                lambda s: s.create_tenant(principal, self.tenant(slot), name=f"Tenant {slot}"),
            )

        @rule(slot=_SLOT, suspend=st.booleans())
        def change_tenant_status(self, slot: int, suspend: bool) -> None:
            tenant = self.tenant(slot)
            if suspend:
                self.both("suspend_tenant", lambda s: s.suspend_tenant(self.operator, tenant))
            else:
                self.both("reactivate_tenant", lambda s: s.reactivate_tenant(self.operator, tenant))

        @rule(who=_PRINCIPALS, slot=st.none() | _SLOT, roles=st.sampled_from([(), ("admin",)]))
        def create_user(self, who: str, slot: int | None, roles: tuple[str, ...]) -> None:
            principal = self.principal(who, self.user(0))
            tenant = None if slot is None else self.tenant(slot)
            user = self.both(
                "create_user",
                lambda s: s.create_user(
                    principal, display_name="Zoë", tenant_id=tenant, roles=roles
                ),
            )
            if user is not None:
                self.users.append(user.id)

        @rule(slot=_SLOT, who=_PRINCIPALS)
        def read_user(self, slot: int, who: str) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            self.both("get_user", lambda s: s.get_user(principal, user_id))
            if who == "self":
                self.both("me", lambda s: s.me(principal, tenant_id=self.tenant(0)))

        @rule(slot=_SLOT, who=_PRINCIPALS, verb=st.sampled_from(["suspend", "reactivate", "close"]))
        def user_lifecycle(self, slot: int, who: str, verb: str) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            self.both(f"{verb}_user", lambda s: getattr(s, f"{verb}_user")(principal, user_id))

        @rule(slot=_SLOT, who=_PRINCIPALS, handle=st.integers(0, 2), upper=st.booleans())
        def create_account(self, slot: int, who: str, handle: int, upper: bool) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            text = f"h{handle}.{self.ns}@example.com"
            text = text.upper() if upper else text
            account = self.both(
                "create_account", lambda s: s.create_account(principal, user_id, handle=text)
            )
            if account is not None:
                self.accounts.append(account.id)

        @rule(
            index=_SLOT, who=_PRINCIPALS, verb=st.sampled_from(["suspend", "reactivate", "close"])
        )
        def account_lifecycle(self, index: int, who: str, verb: str) -> None:
            account_id = self.accounts[index] if index < len(self.accounts) else "acc_none"
            principal = self.principal(who, self.user(0))
            self.both(
                f"{verb}_account", lambda s: getattr(s, f"{verb}_account")(principal, account_id)
            )

        @rule(
            tenant=_SLOT,
            slot=_SLOT,
            who=_PRINCIPALS,
            verb=st.sampled_from(["add", "suspend", "reactivate", "remove", "roles"]),
        )
        def tenant_account(self, tenant: int, slot: int, who: str, verb: str) -> None:
            tenant_id, user_id = self.tenant(tenant), self.user(slot)
            principal = self.principal(who, user_id)
            calls: dict[str, Callable[[UserEngineService], Any]] = {
                "add": lambda s: s.add_to_tenant(principal, tenant_id, user_id, roles=["member"]),
                "suspend": lambda s: s.suspend_tenant_account(principal, tenant_id, user_id),
                "reactivate": lambda s: s.reactivate_tenant_account(principal, tenant_id, user_id),
                "remove": lambda s: s.remove_from_tenant(principal, tenant_id, user_id),
                "roles": lambda s: s.assign_tenant_roles(
                    principal, tenant_id, user_id, ["admin", "billing"]
                ),
            }
            self.both(f"tenant account {verb}", calls[verb])
            self.both(
                "list_tenant_accounts", lambda s: s.list_tenant_accounts(self.admin, tenant_id)
            )

        @rule(
            tenant=_SLOT,
            slot=_SLOT,
            who=_PRINCIPALS,
            group=st.sampled_from(["ops", "dev"]),
            add=st.booleans(),
        )
        def membership(self, tenant: int, slot: int, who: str, group: str, add: bool) -> None:
            tenant_id, user_id = self.tenant(tenant), self.user(slot)
            principal = self.principal(who, user_id)
            if add:
                self.both(
                    "add_membership",
                    lambda s: s.add_membership(principal, tenant_id, user_id, group),
                )
            else:
                self.both(
                    "remove_membership",
                    lambda s: s.remove_membership(principal, tenant_id, user_id, group),
                )
            self.both("list_memberships", lambda s: s.list_memberships(self.operator, tenant_id))

        @rule(slot=_SLOT, who=_PRINCIPALS, subject=st.sampled_from([0, 0, 0, 1]))
        def link_identity(self, slot: int, who: str, subject: int) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            issuer, sub = "https://idp.example", f"sub-{self.ns}-{subject}"
            self.both(
                "link_identity",
                lambda s: s.link_identity(principal, user_id, issuer=issuer, subject=sub),
            )
            self.both(
                "lookup_identity",
                lambda s: s.lookup_identity(self.operator, issuer=issuer, subject=sub),
            )

        @rule(slot=_SLOT, who=_PRINCIPALS, subject=st.sampled_from([0, 0, 0, 1]))
        def unlink_identity(self, slot: int, who: str, subject: int) -> None:
            principal = self.principal(who, self.user(slot))
            issuer, sub = "https://idp.example", f"sub-{self.ns}-{subject}"
            self.both(
                "unlink_identity",
                lambda s: s.unlink_identity(principal, issuer=issuer, subject=sub),
            )

        @rule(slot=_SLOT, who=_PRINCIPALS, remove=st.booleans())
        def factor(self, slot: int, who: str, remove: bool) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            if remove:
                factor_id = self.factors[-1] if self.factors else f"fac_{self.ns}_none"
                self.both("remove_factor", lambda s: s.remove_factor(principal, user_id, factor_id))
                return
            factor = self.both(
                "enroll_factor",
                lambda s: s.enroll_factor(
                    principal, user_id, kind="totp", label="Phone", secret=b"s3cr3t"
                ),
            )
            if factor is not None:
                self.factors.append(factor.id)

        @rule(slot=_SLOT, who=_PRINCIPALS)
        def register_application(self, slot: int, who: str) -> None:
            principal = self.principal(who, self.user(0))
            app = self.application(slot)
            self.both(
                "register_application",
                lambda s: s.register_application(principal, app, name=f"App {slot}"),
            )

        @rule(slot=_SLOT, catalog=st.integers(0, 1), who=_PRINCIPALS)
        def publish_catalog(self, slot: int, catalog: int, who: str) -> None:
            app = self.application(slot)
            principal = (
                Principal.application(app)
                if who == "application"
                else self.principal(who, self.user(0))
            )
            self.both(
                "publish_catalog",
                lambda s: s.publish_catalog(principal, app, list(_CATALOGS[catalog])),
            )
            self.both(
                "list_catalog_versions", lambda s: s.list_catalog_versions(self.operator, app)
            )

        @rule(
            app=_SLOT,
            tenant=_SLOT,
            slot=_SLOT,
            who=_PRINCIPALS,
            bind=st.booleans(),
            grant=st.booleans(),
        )
        def binding(
            self, app: int, tenant: int, slot: int, who: str, bind: bool, grant: bool
        ) -> None:
            app_id, tenant_id, user_id = self.application(app), self.tenant(tenant), self.user(slot)
            principal = self.principal(who, user_id)
            granted = [f"{self.application(app + 1)}.nickname"] if grant else []
            if bind:
                self.both(
                    "bind_application",
                    lambda s: s.bind_application(
                        principal,
                        app_id,
                        tenant_id=tenant_id,
                        user_id=user_id,
                        granted_attributes=granted,
                    ),
                )
            else:
                self.both(
                    "unbind_application",
                    lambda s: s.unbind_application(
                        principal, app_id, tenant_id=tenant_id, user_id=user_id
                    ),
                )

        @rule(
            app=_SLOT,
            attribute=_PROFILE_ATTRIBUTES,
            layer=_LAYERS,
            tenant=_SLOT,
            slot=_SLOT,
            who=_PRINCIPALS,
            value=_VALUES,
            expected=_EXPECTED,
            clear=st.sampled_from([False, False, True]),
        )
        def profile_value(
            self,
            app: int,
            attribute: str,
            layer: Layer,
            tenant: int,
            slot: int,
            who: str,
            value: object,
            expected: int | None,
            clear: bool,
        ) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            if who == "application":
                principal = Principal.application(self.application(app))
            needs_user = layer in (Layer.USER, Layer.USER_IN_TENANT)
            needs_tenant = layer in (Layer.USER_IN_TENANT, Layer.TENANT_DEFAULT)
            where: dict[str, Any] = {
                "attribute": f"{self.application(app)}.{attribute}",
                "layer": layer,
                "user_id": user_id if needs_user else None,
                "tenant_id": self.tenant(tenant) if needs_tenant else None,
                "expected_version": expected,
            }
            if clear:
                self.both(
                    "clear_profile_value", lambda s: s.clear_profile_value(principal, **where)
                )
            else:
                self.both(
                    "write_profile_value",
                    lambda s: s.write_profile_value(principal, value=value, **where),
                )

        @rule(slot=_SLOT, tenant=st.none() | _SLOT, who=_PRINCIPALS, explain=st.booleans())
        def read_profile(self, slot: int, tenant: int | None, who: str, explain: bool) -> None:
            user_id = self.user(slot)
            principal = self.principal(who, user_id)
            tenant_id = None if tenant is None else self.tenant(tenant)
            self.both(
                "effective_profile",
                lambda s: s.effective_profile(
                    principal, user_id, tenant_id=tenant_id, explain=explain
                ),
            )
            if tenant_id is not None:
                app = self.application(0)
                self.both(
                    "project_profile",
                    lambda s: s.project_profile(
                        Principal.application(app), app, tenant_id=tenant_id, user_id=user_id
                    ),
                )
                self.both(
                    "verify_secret_attribute",
                    lambda s: s.verify_secret_attribute(
                        Principal.application(app),
                        attribute=f"{app}.pin",
                        user_id=user_id,
                        tenant_id=tenant_id,
                        candidate="aZ",
                    ),
                )

        @rule(
            tenant=_SLOT,
            who=st.sampled_from(["operator", "admin", "self"]),
            outcome=st.sampled_from([None, "denied", "failed"]),
            limit=st.integers(1, 3),
        )
        def read_audit(self, tenant: int, who: str, outcome: str | None, limit: int) -> None:
            principal = self.principal(who, self.user(0))
            tenant_id = self.tenant(tenant)
            self.both(
                "read_audit",
                lambda s: s.read_audit(
                    principal, tenant_id=tenant_id, outcome=outcome, limit=limit
                ),
            )

        @rule(slot=_SLOT, tenant=_SLOT, rollback=st.booleans(), nested=st.booleans())
        def grouped(self, slot: int, tenant: int, rollback: bool, nested: bool) -> None:
            """Several operations in one ``transaction()``, maybe nested, maybe rolled back."""
            user_id, tenant_id = self.user(slot), self.tenant(tenant)

            def group(service: UserEngineService) -> list[tuple[str, Any]]:
                done: list[tuple[str, Any]] = []
                steps: list[Callable[[], Any]] = [
                    lambda: service.add_to_tenant(self.operator, tenant_id, user_id),
                    lambda: service.create_tenant(self.operator, tenant_id, name="Grouped"),
                    lambda: service.add_membership(self.operator, tenant_id, user_id, "ops"),
                    lambda: service.add_membership(self.admin, tenant_id, user_id, "dev"),
                ]

                def attempt(thunk: Callable[[], object]) -> tuple[str, Any]:
                    return self._outcome(lambda _service: thunk(), service)

                with service.transaction():
                    for number, step in enumerate(steps):
                        nest = nested and number == 2
                        done.append(
                            attempt(
                                functools.partial(self._nested, service, step) if nest else step
                            )
                        )
                    if rollback:
                        raise _Rollback
                return done

            self.both("transaction()", group)

        @staticmethod
        def _nested(service: UserEngineService, step: Callable[[], object]) -> None:
            """A nested ``transaction()`` (a savepoint) that always rolls back."""
            with service.transaction():
                step()
                raise _Rollback

        @rule(limit=st.integers(1, 4), then=st.sampled_from(["ack", "release", "abandon"]))
        def relay(self, limit: int, then: str) -> None:
            """Claim as a relay would, then acknowledge, release or abandon the claim."""

            def claim(side: _Side) -> tuple[list[ClaimedEvent], int]:
                now = side.clock.now()
                claimed = side.store.claim_events(limit=limit, lease=timedelta(seconds=60), now=now)
                claims = [c.claim for c in claimed]
                if then == "ack":
                    return claimed, side.store.ack_events(claims)
                if then == "release":
                    return claimed, side.store.release_events(
                        claims, error="broker down", now=now, policy=_POLICY
                    )
                return claimed, 0

            expected, expected_count = claim(self.reference)
            actual, actual_count = claim(self.subject)
            mine = [c for c in actual if self.ns in c.event.id]
            assert [(self._normalized(c.event), c.lease_expires_at) for c in mine] == [
                (self._normalized(c.event), c.lease_expires_at) for c in expected
            ], f"relay claim ({then}): the adapter handed out other events than the reference"
            assert actual_count == expected_count, f"relay {then}: counts differ"

    return ServiceModel


def _audit_high_water(store: UserEngineStore) -> int:
    """The sequence the adapter's audit log has reached, in one write instead of reading a
    log that earlier tests may have filled: append a marker (outside every namespace)."""
    marker = AuditRecord(
        id=f"aud_model_start_{uuid.uuid4().hex[:12]}",
        occurred_at=FixedClock().now(),
        tenant_id=None,
        actor_id="conformance-model",
        actor_kind="platform-operator",
        action="conformance.model.start",
        target_kind="store",
        target_id="model",
        outcome=AuditOutcome.SUCCESS,
    )
    return store.append_audit_autonomous(marker).sequence


class ModelClauses:
    """The stateful model test."""

    model_examples: ClassVar[int] = 50
    """Random operation sequences per run (``--user-engine-model-examples`` overrides)."""

    model_steps: ClassVar[int] = 50
    """Operations per sequence, at most."""

    def build_store(self, host: PluginHost, settings: Mapping[str, Any]) -> UserEngineStore:
        """Build the adapter's store (``StoreConformance`` provides it)."""
        raise NotImplementedError

    @clause("store.model.equivalence")
    def test_random_service_operations_match_the_reference_store(
        self,
        store: UserEngineStore,
        plugin_host: PluginHost,
        adapter_settings: Mapping[str, Any],
        request: pytest.FixtureRequest,
    ) -> None:
        examples = request.config.getoption(MODEL_EXAMPLES_OPTION) or self.model_examples
        # Every example gets its own store from the factory, as an application would.
        machine = _model_machine(lambda: self.build_store(plugin_host, adapter_settings))
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=self.model_steps,
                deadline=None,
                # Fixed seed: the same adapter gets the same verdict on every run.
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
