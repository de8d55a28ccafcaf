"""Store clauses: every record kind round trips; keys are unique; versions are optimistic."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from user_engine.domain import (
    AuditFilter,
    Layer,
    ProfileScalar,
    TenantAccountStatus,
    TenantStatus,
    UserStatus,
)
from user_engine.errors import ConflictError, NotFoundError
from user_engine.ports import StoreTransaction, UserEngineStore

from user_engine_conformance._samples import PLATFORM, T0, Sample, all_pending, as_json
from user_engine_conformance._threads import run_at_once
from user_engine_conformance.clauses import clause

__all__ = ["RecordClauses"]

# Text that breaks naive SQL building, LIKE matching, normalisation or encoding.
TRICKY_TEXT = (
    "O'Brien\"; DROP TABLE users; --",
    "back\\slash \\' and \\\\",
    "100% of _all_ rows",
    "Zoë Ünïcødé 名前 🚀",
    "e\u0301 (combining) vs \u00e9",
    "\u202eright-to-left override",
    "$1 :name %(name)s {0} ?",
    "trailing space ",
)


def _scalar_types(value: object) -> str:
    return type(value).__name__


class RecordClauses:
    """Round trips of every record kind, uniqueness and optimistic versions."""

    # -- round trips ------------------------------------------------------------------------
    @clause("store.roundtrip.tenant")
    def test_a_tenant_reads_back_as_written(self, store: UserEngineStore) -> None:
        sample = Sample()
        tenant = sample.tenant("a", name="Acme GmbH")
        with sample.write(store) as tx:
            tx.insert_tenant(tenant)
        with sample.write(store) as tx:
            assert tx.get_tenant(tenant.id) == tenant
            assert tx.get_tenant(sample.tenant_id("missing")) is None

    @clause("store.roundtrip.user")
    def test_a_user_reads_back_as_written(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.user("1", display_name="Ada Lovelace")
        with sample.write(store) as tx:
            tx.insert_user(user)
        with sample.write(store) as tx:
            assert tx.get_user(user.id) == user
            assert tx.get_user(sample.user_id("missing")) is None

    @clause("store.roundtrip.account")
    def test_an_account_reads_back_as_written(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        account = sample.account(user.id, "1", handle=f"Ada.{sample.token}@Example.COM")
        with sample.write(store) as tx:
            tx.insert_account(account)
        with sample.write(store) as tx:
            assert tx.get_account(account.id) == account, "the handle keeps its case"
            assert tx.get_account(f"acc_{sample.token}_missing") is None

    @clause("store.roundtrip.tenant-account")
    def test_a_tenant_account_reads_back_with_its_roles(self, store: UserEngineStore) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store)
        tenant_account = sample.tenant_account(
            tenant.id, user.id, roles=("admin", "billing-viewer", "Ünïcode role")
        )
        with sample.write(store) as tx:
            tx.insert_tenant_account(tenant_account)
        with sample.write(store) as tx:
            assert tx.get_tenant_account(tenant.id, user.id) == tenant_account
            assert tx.get_tenant_account(tenant.id, sample.user_id("missing")) is None

    @clause("store.roundtrip.membership")
    def test_a_membership_reads_back_and_deletes(self, store: UserEngineStore) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store, tenants=[tenant.id])
        membership = sample.membership(tenant.id, user.id, "Engineering & Ops")
        with sample.write(store) as tx:
            tx.insert_membership(membership)
        with sample.write(store) as tx:
            assert tx.list_memberships(tenant.id, user.id) == [membership]
        with sample.write(store) as tx:
            assert tx.delete_membership(tenant.id, user.id, membership.group) is True
        with sample.write(store) as tx:
            assert tx.list_memberships(tenant.id, user.id) == []
            assert tx.delete_membership(tenant.id, user.id, membership.group) is False

    @clause("store.roundtrip.identity")
    def test_an_identity_link_reads_back_and_unlinks(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        identity = sample.identity(user.id, "248289761001")
        with sample.write(store) as tx:
            tx.insert_identity(identity)
        with sample.write(store) as tx:
            assert tx.get_identity(identity.issuer, identity.subject) == identity
        with sample.write(store) as tx:
            assert tx.delete_identity(identity.issuer, identity.subject) is True
        with sample.write(store) as tx:
            assert tx.get_identity(identity.issuer, identity.subject) is None
            assert tx.delete_identity(identity.issuer, identity.subject) is False

    @clause("store.roundtrip.factor")
    def test_a_factor_reads_back_with_its_secret_reference_and_deletes(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        factor = sample.factor(user.id, "1")
        with sample.write(store) as tx:
            tx.insert_factor(factor)
        with sample.write(store) as tx:
            found = tx.get_factor(factor.id)
            assert found == factor
            assert found is not None
            assert found.secret_ref == factor.secret_ref
        with sample.write(store) as tx:
            assert tx.delete_factor(factor.id) is True
        with sample.write(store) as tx:
            assert tx.get_factor(factor.id) is None
            assert tx.delete_factor(factor.id) is False

    @clause("store.roundtrip.application")
    def test_an_application_reads_back_as_written(self, store: UserEngineStore) -> None:
        sample = Sample()
        application = sample.application("a")
        with sample.write(store) as tx:
            tx.insert_application(application)
        with sample.write(store) as tx:
            assert tx.get_application(application.id) == application
            assert tx.get_application(sample.application_id("missing")) is None

    @clause("store.roundtrip.binding")
    def test_a_binding_reads_back_is_replaced_and_deletes(self, store: UserEngineStore) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store, tenants=[tenant.id])
        application = sample.seed_application(store)
        first = sample.binding(application.id, tenant.id, user.id, [f"{application.id}.locale"])
        second = dataclasses.replace(
            first,
            granted_attributes=frozenset({f"{application.id}.nickname", f"{application.id}.seats"}),
            created_at=T0 + timedelta(days=1),
        )
        with sample.write(store) as tx:
            tx.put_binding(first)
        with sample.write(store) as tx:
            assert tx.get_binding(application.id, tenant.id, user.id) == first
            tx.put_binding(second)
        with sample.write(store) as tx:
            assert tx.get_binding(application.id, tenant.id, user.id) == second
            assert tx.delete_binding(application.id, tenant.id, user.id) is True
        with sample.write(store) as tx:
            assert tx.get_binding(application.id, tenant.id, user.id) is None
            assert tx.delete_binding(application.id, tenant.id, user.id) is False

    @clause("store.roundtrip.catalog")
    def test_a_catalog_version_reads_back_with_every_attribute_option(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        application = sample.application("a")
        catalog = sample.rich_catalog(application.id, 1)
        with sample.write(store) as tx:
            tx.insert_application(application)
            tx.insert_catalog_version(catalog)
        with sample.write(store) as tx:
            found = tx.get_catalog_version(application.id, 1)
        assert found == catalog
        assert found is not None
        for written, read in zip(catalog.attributes, found.attributes, strict=True):
            assert as_json([written.enum, written.default, written.minimum]) == as_json(
                [read.enum, read.default, read.minimum]
            ), f"types of {written.name}'s enum, default and bounds are kept"

    @clause("store.roundtrip.profile-value")
    @pytest.mark.parametrize(
        "value",
        ["Grace 🚀", "", 0, -7, 2**53, 1.5, -0.25, True, False],
        ids=[
            "text",
            "empty-text",
            "zero",
            "negative",
            "2**53",
            "float",
            "negative-float",
            "true",
            "false",
        ],
    )
    def test_a_profile_value_reads_back_with_its_type_at_every_layer(
        self, store: UserEngineStore, value: ProfileScalar
    ) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store, tenants=[tenant.id])
        application = sample.seed_application(store)
        keys = [
            sample.profile_key(application.id, layer=Layer.USER, user_id=user.id),
            sample.profile_key(
                application.id, layer=Layer.USER_IN_TENANT, tenant_id=tenant.id, user_id=user.id
            ),
            sample.profile_key(application.id, layer=Layer.TENANT_DEFAULT, tenant_id=tenant.id),
            sample.profile_key(application.id, layer=Layer.APPLICATION_DEFAULT),
        ]
        written = [sample.profile_value(key, value) for key in keys]
        with sample.write(store) as tx:
            stored = [tx.put_profile_value(v, expected_version=None) for v in written]
        assert stored == written, "a new value is stored at version 1"
        with sample.write(store) as tx:
            for value_written in written:
                read = tx.get_profile_value(value_written.key)
                assert read == value_written
                assert read is not None
                assert as_json(read.value) == as_json(value), (
                    f"the value's type is kept at {value_written.key.layer.value}: wrote "
                    f"{_scalar_types(value)}, read {_scalar_types(read.value)}"
                )

    @clause("store.roundtrip.audit-record")
    def test_an_audit_record_reads_back_with_its_sequence(self, store: UserEngineStore) -> None:
        sample = Sample()
        record = sample.audit_record(
            tenant_id=None, details={"attribute": "app.nickname", "layer": "user", "ünï": "ok"}
        )
        with sample.write(store) as tx:
            tx.append_audit(record)
        sequence = tx.audit_sequences()[record.id]
        assert sequence > 0, "the store assigns a sequence on append"
        page = store.read_audit(AuditFilter(actor_id=record.actor_id), PLATFORM)
        assert page.records == (dataclasses.replace(record, sequence=sequence),)
        assert dict(page.records[0].details) == dict(record.details)

    @clause("store.roundtrip.outbox-event")
    def test_an_outbox_event_reads_back_with_its_payload(self, store: UserEngineStore) -> None:
        sample = Sample()
        payload = {
            "text": "Zoë 🚀",
            "int": 7,
            "float": 0.5,
            "whole_float": 2.0,
            "true": True,
            "none": None,
            "list": [1, "two", False, None],
            "nested": {"k": {"deep": [1.25]}},
        }
        event = sample.event("a", tenant_id=sample.tenant_id(), payload=payload)
        with sample.write(store) as tx:
            tx.append_event(event)
        [read] = [e for e in all_pending(store) if e.id == event.id]
        assert read.sequence > 0, "the store assigns a sequence on append"
        assert read == dataclasses.replace(event, sequence=read.sequence)
        assert store.pending_events(limit=1, after_sequence=read.sequence - 1) == [read]
        assert read.occurred_at == event.occurred_at
        assert as_json(read.payload) == as_json(payload), "JSON types are kept"

    @clause("store.roundtrip.text")
    @pytest.mark.parametrize("text", TRICKY_TEXT)
    def test_tricky_text_round_trips_exactly_and_matches_nothing_else(
        self, store: UserEngineStore, text: str
    ) -> None:
        sample = Sample()
        tenant = sample.tenant("a", name=text)
        user = sample.user("1", display_name=text)
        account = sample.account(user.id, "1", handle=f"{text}.{sample.token}")
        # Differs from the handle only where LIKE would see a wildcard.
        lookalike = sample.account(
            user.id, "2", handle=account.handle.replace("%", "x%").replace("_", "y")
        )
        identity = sample.identity(user.id, f"{text}|{sample.token}")
        application = sample.application("a")
        key = sample.profile_key(application.id, user_id=user.id)
        value = sample.profile_value(key, text)
        with sample.write(store) as tx:
            tx.insert_tenant(tenant)
            tx.insert_user(user)
            tx.insert_account(account)
            if lookalike.handle != account.handle:
                tx.insert_account(lookalike)
            tx.insert_tenant_account(sample.tenant_account(tenant.id, user.id, roles=[text]))
            tx.insert_membership(sample.membership(tenant.id, user.id, text))
            tx.insert_identity(identity)
            tx.insert_application(application)
            tx.insert_catalog_version(sample.catalog(application.id, 1))
            tx.put_profile_value(value, expected_version=None)
        with sample.write(store) as tx:
            assert tx.get_tenant(tenant.id) == tenant
            assert tx.get_user(user.id) == user
            assert tx.get_account(account.id) == account
            assert tx.get_identity(identity.issuer, identity.subject) == identity
            assert [m.group for m in tx.list_memberships(tenant.id, user.id)] == [text]
            found = tx.get_tenant_account(tenant.id, user.id)
            assert found is not None
            assert found.roles == frozenset({text})
            assert tx.get_profile_value(key) == value
            # Wildcards and quotes compare literally.
            assert tx.get_identity(identity.issuer, identity.subject + "%") is None
            if "_" in text:
                assert tx.get_identity(identity.issuer, identity.subject.replace("_", "x")) is None

    # -- versions and uniqueness ------------------------------------------------------------
    @clause("store.update.optimistic")
    @pytest.mark.parametrize("kind", ["tenant", "user", "account", "tenant-account"])
    def test_a_versioned_record_updates_only_at_the_expected_version(
        self, store: UserEngineStore, kind: str
    ) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store, tenants=[tenant.id])
        account = sample.account(user.id, "1")
        with sample.write(store) as tx:
            tx.insert_account(account)
        tenant_account = sample.tenant_account(tenant.id, user.id)
        cases: dict[str, tuple[object, object, Callable[[StoreTransaction], object]]] = {
            "tenant": (
                dataclasses.replace(tenant, name="Renamed", status=TenantStatus.SUSPENDED),
                dataclasses.replace(tenant, id=sample.tenant_id("missing")),
                lambda tx: tx.get_tenant(tenant.id),
            ),
            "user": (
                dataclasses.replace(user, display_name="Renamed", status=UserStatus.SUSPENDED),
                dataclasses.replace(user, id=sample.user_id("missing")),
                lambda tx: tx.get_user(user.id),
            ),
            "account": (
                dataclasses.replace(account, status=UserStatus.CLOSED),
                dataclasses.replace(account, id=f"acc_{sample.token}_missing"),
                lambda tx: tx.get_account(account.id),
            ),
            "tenant-account": (
                dataclasses.replace(
                    tenant_account,
                    status=TenantAccountStatus.SUSPENDED,
                    roles=frozenset({"admin"}),
                    updated_at=T0 + timedelta(hours=1),
                ),
                dataclasses.replace(tenant_account, user_id=sample.user_id("missing")),
                lambda tx: tx.get_tenant_account(tenant.id, user.id),
            ),
        }
        changed, missing, read = cases[kind]

        def update(tx: StoreTransaction, row: object, expected: int) -> None:
            method = getattr(tx, f"update_{kind.replace('-', '_')}")
            method(row, expected_version=expected)

        with sample.write(store) as tx:
            update(tx, changed, 1)
        with sample.write(store) as tx:
            assert read(tx) == dataclasses.replace(changed, version=2)  # type: ignore[type-var]

        stale = dataclasses.replace(changed, version=1)  # type: ignore[type-var]
        with pytest.raises(ConflictError) as conflict, sample.write(store) as tx:
            update(tx, stale, 1)
        assert conflict.value.code == "stale"
        with pytest.raises(NotFoundError), sample.write(store) as tx:
            update(tx, missing, 1)
        with sample.write(store) as tx:
            assert read(tx) == dataclasses.replace(changed, version=2)  # type: ignore[type-var]

    @clause("store.unique.keys")
    @pytest.mark.parametrize(
        ("kind", "code"),
        [
            ("tenant", "tenant.exists"),
            ("user", "user.exists"),
            ("account", "account.exists"),
            ("account-handle", "account.handle_taken"),
            ("tenant-account", "tenant_account.exists"),
            ("membership", "membership.exists"),
            ("factor", "factor.exists"),
            ("application", "application.exists"),
        ],
    )
    def test_inserting_an_existing_key_is_a_conflict_and_keeps_the_first_row(
        self, store: UserEngineStore, kind: str, code: str
    ) -> None:
        sample = Sample()
        [tenant] = sample.seed_tenants(store, "a")
        user = sample.seed_user(store, tenants=[tenant.id])
        other_user = sample.seed_user(store, "2")
        account = sample.account(user.id, "1", handle=f"Ada.{sample.token}@Example.com")
        factor = sample.factor(user.id, "1")
        application = sample.application("a")
        membership = sample.membership(tenant.id, user.id, "staff")
        with sample.write(store) as tx:
            tx.insert_account(account)
            tx.insert_factor(factor)
            tx.insert_application(application)
            tx.insert_membership(membership)
        duplicates: dict[str, Callable[[StoreTransaction], None]] = {
            "tenant": lambda tx: tx.insert_tenant(dataclasses.replace(tenant, name="Second")),
            "user": lambda tx: tx.insert_user(dataclasses.replace(user, display_name="Second")),
            "account": lambda tx: tx.insert_account(
                dataclasses.replace(account, handle=f"other.{sample.token}@example.com")
            ),
            "account-handle": lambda tx: tx.insert_account(
                sample.account(other_user.id, "2", handle=account.handle.lower())
            ),
            "tenant-account": lambda tx: tx.insert_tenant_account(
                sample.tenant_account(tenant.id, user.id, roles=["other"])
            ),
            "membership": lambda tx: tx.insert_membership(membership),
            "factor": lambda tx: tx.insert_factor(dataclasses.replace(factor, label="Second")),
            "application": lambda tx: tx.insert_application(
                dataclasses.replace(application, name="Second")
            ),
        }
        with sample.write(store) as tx:
            before = _snapshot(tx, sample, tenant.id, user.id, account.id, factor.id)

        with pytest.raises(ConflictError) as conflict, sample.write(store) as tx:
            duplicates[kind](tx)

        assert conflict.value.code == code
        with sample.write(store) as tx:
            assert _snapshot(tx, sample, tenant.id, user.id, account.id, factor.id) == before
            assert tx.list_accounts(other_user.id) == []

    @clause("store.identity.unique")
    def test_linking_an_identity_twice_is_a_conflict(self, store: UserEngineStore) -> None:
        sample = Sample()
        first_user = sample.seed_user(store, "1")
        second_user = sample.seed_user(store, "2")
        identity = sample.identity(first_user.id, "subject-1")
        with sample.write(store) as tx:
            tx.insert_identity(identity)

        for user in (second_user, first_user):
            with pytest.raises(ConflictError) as conflict, sample.write(store) as tx:
                tx.insert_identity(dataclasses.replace(identity, user_id=user.id))
            assert conflict.value.code == "identity.already_linked"

        with sample.write(store) as tx:
            assert tx.get_identity(identity.issuer, identity.subject) == identity
            assert tx.list_identities(second_user.id) == []
            # The same subject at another issuer is another identity.
            tx.insert_identity(
                sample.identity(second_user.id, "subject-1", issuer=sample.issuer("b"))
            )
            # Once unlinked, the identity may be linked again.
            assert tx.delete_identity(identity.issuer, identity.subject) is True
            tx.insert_identity(dataclasses.replace(identity, user_id=second_user.id))
        with sample.write(store) as tx:
            found = tx.get_identity(identity.issuer, identity.subject)
            assert found is not None
            assert found.user_id == second_user.id

    @clause("store.identity.unique-concurrent")
    def test_racing_writers_linking_one_identity_leave_exactly_one_link(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        users = [sample.seed_user(store, str(n)) for n in range(6)]
        identity = sample.identity(users[0].id, "contested")

        def link(user_id: str) -> Callable[[], None]:
            def work() -> None:
                with sample.write(store) as tx:
                    tx.insert_identity(dataclasses.replace(identity, user_id=user_id))

            return work

        outcomes = run_at_once([link(user.id) for user in users])

        winners = [o for o in outcomes if o.error is None]
        others = [o.error for o in outcomes if o.error is not None]
        assert len(winners) == 1, f"{len(winners)} writers linked the same identity"
        for error in others:
            assert isinstance(error, ConflictError), f"expected ConflictError, got {error!r}"
            assert error.code == "identity.already_linked"
        winner = users[outcomes.index(winners[0])]
        with sample.write(store) as tx:
            found = tx.get_identity(identity.issuer, identity.subject)
            assert found is not None
            assert found.user_id == winner.id

    @clause("store.catalog.immutable")
    def test_publishing_a_catalog_version_again_is_a_conflict_and_changes_nothing(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        application = sample.seed_application(store)
        with sample.write(store) as tx:
            original = tx.get_catalog_version(application.id, 1)
        assert original is not None
        rewrite = sample.catalog(application.id, 1)

        with pytest.raises(ConflictError) as conflict, sample.write(store) as tx:
            tx.insert_catalog_version(rewrite)

        assert conflict.value.code == "catalog.version_exists"
        newer = sample.catalog(application.id, 2)
        with sample.write(store) as tx:
            tx.insert_catalog_version(newer)
        with sample.write(store) as tx:
            assert tx.get_catalog_version(application.id, 1) == original
            assert tx.get_current_catalog(application.id) == newer

    @clause("store.profile.optimistic")
    def test_profile_writes_honour_the_expected_version(self, store: UserEngineStore) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        application = sample.seed_application(store)
        key = sample.profile_key(application.id, user_id=user.id)
        missing = sample.profile_key(application.id, "locale", user_id=user.id)

        def put(value: str, expected: int | None) -> int:
            with sample.write(store) as tx:
                return tx.put_profile_value(
                    sample.profile_value(key, value), expected_version=expected
                ).version

        def assert_stale(write: Callable[[StoreTransaction], object]) -> None:
            with pytest.raises(ConflictError) as conflict, sample.write(store) as tx:
                write(tx)
            assert conflict.value.code == "profile.stale"

        def current() -> tuple[object, int] | None:
            with sample.write(store) as tx:
                found = tx.get_profile_value(key)
            return None if found is None else (found.value, found.version)

        assert put("first", 0) == 1, "expected version 0 writes a new value at version 1"
        assert_stale(
            lambda tx: tx.put_profile_value(sample.profile_value(key, "again"), expected_version=0)
        )
        assert current() == ("first", 1)
        assert put("second", 1) == 2
        assert_stale(
            lambda tx: tx.put_profile_value(sample.profile_value(key, "stale"), expected_version=1)
        )
        assert put("third", None) == 3, "no expected version writes unconditionally"
        assert current() == ("third", 3)
        assert_stale(
            lambda tx: tx.put_profile_value(
                sample.profile_value(missing, "en-GB"), expected_version=4
            )
        )
        assert_stale(lambda tx: tx.delete_profile_value(key, expected_version=2))
        assert current() == ("third", 3)

        with sample.write(store) as tx:
            removed = tx.delete_profile_value(key, expected_version=3)
        assert removed is not None
        assert (removed.value, removed.version) == ("third", 3)
        assert current() is None
        with sample.write(store) as tx:
            assert tx.get_profile_value(missing) is None
            assert tx.delete_profile_value(key, expected_version=None) is None
            assert tx.delete_profile_value(key, expected_version=0) is None
        assert_stale(lambda tx: tx.delete_profile_value(key, expected_version=1))

    @clause("store.profile.optimistic-concurrent")
    def test_racing_profile_writers_with_one_expected_version_leave_one_winner(
        self, store: UserEngineStore
    ) -> None:
        sample = Sample()
        user = sample.seed_user(store)
        application = sample.seed_application(store)
        key = sample.profile_key(application.id, user_id=user.id)
        with sample.write(store) as tx:
            tx.put_profile_value(sample.profile_value(key, "start"), expected_version=0)

        def write(value: str) -> Callable[[], int]:
            def work() -> int:
                with sample.write(store) as tx:
                    return tx.put_profile_value(
                        sample.profile_value(key, value), expected_version=1
                    ).version

            return work

        outcomes = run_at_once([write(f"writer-{n}") for n in range(6)])

        winners = [n for n, o in enumerate(outcomes) if o.error is None]
        assert len(winners) == 1, f"{len(winners)} writers passed the same expected version"
        for outcome in outcomes:
            if outcome.error is not None:
                assert isinstance(outcome.error, ConflictError), repr(outcome.error)
                assert outcome.error.code == "profile.stale"
        with sample.write(store) as tx:
            found = tx.get_profile_value(key)
        assert found is not None
        assert (found.value, found.version) == (f"writer-{winners[0]}", 2)


def _snapshot(
    tx: StoreTransaction,
    sample: Sample,
    tenant_id: str,
    user_id: str,
    account_id: str,
    factor_id: str,
) -> tuple[object, ...]:
    return (
        tx.get_tenant(tenant_id),
        tx.get_user(user_id),
        tx.get_account(account_id),
        tx.list_accounts(user_id),
        tx.get_tenant_account(tenant_id, user_id),
        tx.list_memberships(tenant_id, user_id),
        tx.get_factor(factor_id),
        tx.get_application(sample.application_id("a")),
    )
