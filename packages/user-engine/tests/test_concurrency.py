"""Racing writers on the memory store: uniqueness and optimistic concurrency hold.

Each race starts its threads on a barrier so they call the service as close to the same
moment as the interpreter allows, and repeats a few rounds; the assertions count outcomes,
never time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pytest
from user_engine.domain import AuditOutcome, ExternalIdentity, ProfileValue, TenantAccount
from user_engine.errors import ConflictError

if TYPE_CHECKING:
    from conftest import World

THREADS = 8
ROUNDS = 5
T = TypeVar("T")


def race(calls: list[Callable[[], T]]) -> list[T | ConflictError]:
    """Run every call in its own thread, released together; return results or conflicts."""
    barrier = threading.Barrier(len(calls))
    results: list[T | ConflictError | None] = [None] * len(calls)
    unexpected: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except ConflictError as conflict:
            results[index] = conflict
        except BaseException as error:  # surfaced in the main thread below
            unexpected.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == []
    return [r for r in results if r is not None]


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_eight_threads_linking_one_identity_to_different_users_yield_exactly_one_link(
    world: World, round_number: int
) -> None:
    users = [
        world.service.create_user(world.operator, display_name=f"U{i}") for i in range(THREADS)
    ]
    before = world.snapshot()
    subject = f"contested-{round_number}"

    results = race(
        [
            (
                lambda user_id=user.id: world.service.link_identity(
                    world.operator, user_id, issuer="https://idp.example", subject=subject
                )
            )
            for user in users
        ]
    )

    winners = [r for r in results if isinstance(r, ExternalIdentity)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1
    assert len(losers) == THREADS - 1
    assert {loser.code for loser in losers} == {"identity.already_linked"}
    linked = world.service.lookup_identity(
        world.operator, issuer="https://idp.example", subject=subject
    )
    assert linked == winners[0]
    assert [e.event_type for e in world.events_since(before)] == ["identity.linked"]
    outcomes = sorted(r.outcome for r in world.audit_since(before))
    assert outcomes.count(AuditOutcome.SUCCESS) == 1
    assert outcomes.count(AuditOutcome.FAILED) == THREADS - 1


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_racing_profile_writes_with_the_same_expected_version_have_exactly_one_winner(
    world: World, round_number: int
) -> None:
    alice = world.as_user(world.alice)
    current = world.service.write_profile_value(
        alice, attribute="crm.nickname", layer="user", user_id=world.alice.id, value="start"
    )
    before = world.snapshot()

    results = race(
        [
            (
                lambda value=f"writer-{i}-{round_number}": world.service.write_profile_value(
                    alice,
                    attribute="crm.nickname",
                    layer="user",
                    user_id=world.alice.id,
                    value=value,
                    expected_version=current.version,
                )
            )
            for i in range(THREADS)
        ]
    )

    winners = [r for r in results if isinstance(r, ProfileValue)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1
    assert {loser.code for loser in losers} == {"profile.stale"}
    assert len(losers) == THREADS - 1
    assert winners[0].version == current.version + 1
    resolved = world.service.effective_profile(alice, world.alice.id).attributes["crm.nickname"]
    assert (resolved.value, resolved.version) == (winners[0].value, winners[0].version)
    assert len(world.events_since(before)) == 1


def test_racing_first_writes_that_require_absence_have_exactly_one_winner(world: World) -> None:
    alice = world.as_user(world.alice)

    results = race(
        [
            (
                lambda age=20 + i: world.service.write_profile_value(
                    alice,
                    attribute="crm.age",
                    layer="user",
                    user_id=world.alice.id,
                    value=age,
                    expected_version=0,
                )
            )
            for i in range(THREADS)
        ]
    )

    assert len([r for r in results if isinstance(r, ProfileValue)]) == 1
    assert len([r for r in results if isinstance(r, ConflictError)]) == THREADS - 1


def test_racing_admins_adding_one_user_to_a_tenant_create_one_tenant_account(
    world: World,
) -> None:
    results = race(
        [
            (lambda: world.service.add_to_tenant(world.acme_admin, "acme", world.dave.id))
            for _ in range(THREADS)
        ]
    )

    assert len([r for r in results if isinstance(r, TenantAccount)]) == 1
    assert {r.code for r in results if isinstance(r, ConflictError)} == {"tenant_account.exists"}


def test_concurrent_mutations_in_different_tenants_all_commit_with_their_audit_and_events(
    world: World,
) -> None:
    before = world.snapshot()

    results = race(
        [
            (
                lambda i=i, admin=(world.acme_admin if i % 2 else world.globex_admin): (
                    world.service.create_user(
                        admin, display_name=f"Worker {i}", tenant_id=admin.tenant_id
                    )
                )
            )
            for i in range(THREADS)
        ]
    )

    assert len(results) == THREADS
    assert not [r for r in results if isinstance(r, ConflictError)]
    assert world.store.record_counts()["users"] == before.counts["users"] + THREADS
    assert len(world.audit_since(before)) == THREADS
    assert len(world.events_since(before)) == 2 * THREADS
